"""The pure core: values in, values out; no sockets, no clock, no files."""
