#!/bin/sh
# Private Dovecot 2.3 IMAP server for tests, entirely inside DIR.
#   imap-test-server.sh start DIR [PLAIN_PORT=10143] [TLS_PORT=10993]   # daemonizes; pid in DIR/run/master.pid
#   imap-test-server.sh run   DIR [PLAIN_PORT] [TLS_PORT]               # foreground (dovecot -F), for subprocess/pytest
#   imap-test-server.sh stop  DIR
# Never touches /etc/dovecot or the system service. Started as root, it drops to 'nobody'
# (Dovecot's login processes refuse to run as root, and chroot needs root); as any other user it runs as that user.
set -eu
case $(/usr/sbin/dovecot --version 2>/dev/null) in
  2.3.*) ;;
  "") echo "dovecot not installed: apt-get install -y dovecot-imapd" >&2; exit 3 ;;
  *) echo "this config is Dovecot 2.3 syntax; found $(/usr/sbin/dovecot --version)" >&2; exit 3 ;;
esac
CMD=$1; D=$2; P=${3:-10143}; S=${4:-10993}
mkdir -p "$D"; D=$(cd "$D" && pwd)
if [ "$CMD" = stop ]; then exec /usr/sbin/dovecot -c "$D/dovecot.conf" stop; fi
if [ "$(id -u)" = 0 ]; then
  chown -R nobody "$D"
  exec setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups env HOME="$D" "$0" "$@"
fi
U=$(id -un); G=$(id -gn)
L=${LMTP_PORT:-}   # optional: LMTP delivery listener (needs Debian package dovecot-lmtpd)
PROTOS=imap; [ -n "$L" ] && PROTOS="imap lmtp"
mkdir -p "$D/run" "$D/state" "$D/log" "$D/ssl" "$D/mail"
[ -s "$D/ssl/cert.pem" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$D/ssl/key.pem" -out "$D/ssl/cert.pem" 2>/dev/null
chmod 600 "$D/ssl/key.pem"
# passwd-file: user:{SCHEME}password:uid:gid:gecos:home  (uid/gid empty -> userdb default_fields)
[ -s "$D/users" ] || cat > "$D/users" <<USERS
sync@example.test:{PLAIN}secret::::$D/mail/example.test/sync
alice@example.test:{PLAIN}secret::::$D/mail/example.test/alice
USERS
cat > "$D/dovecot.conf" <<CONF
# Dovecot 2.3.x syntax (Debian 12). Dovecot 2.4 (Debian 13) renamed most of these settings.
instance_name = imaptest-$P
base_dir = $D/run
state_dir = $D/state
log_path = $D/log/dovecot.log
info_log_path = $D/log/dovecot.log
protocols = $PROTOS
listen = 127.0.0.1
default_login_user = $U
default_internal_user = $U
default_internal_group = $G
ssl = yes
ssl_cert = <$D/ssl/cert.pem
ssl_key = <$D/ssl/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
# tests: failed LOGIN answers in <=0.5 s instead of 2 s (see also anvil-auth-penalty below)
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $D/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $D/users
  default_fields = uid=$(id -u) gid=$(id -g)
}
mail_location = maildir:~/Maildir
mail_fsync = never
mailbox_idle_check_interval = 1 secs
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
  mailbox Archive {
    special_use = \\Archive
    auto = subscribe
  }
}
# chroot needs root: off for every service that chroots by default
service anvil {
  chroot =
  # mode 0 = auth cannot reach it = no per-IP "auth penalty" (else each failed login from
  # 127.0.0.1 slows every later login, good or bad, by 2..15 s)
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service ipc {
  chroot =
}
service imap-login {
  chroot =
  inet_listener imap {
    port = $P
  }
  inet_listener imaps {
    port = $S
    ssl = yes
  }
}
protocol imap {
  mail_max_userip_connections = 100
}
CONF
[ -n "$L" ] && cat >> "$D/dovecot.conf" <<CONF
service lmtp {
  unix_listener lmtp {
    mode = 0600
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = $L
  }
}
protocol lmtp {
  postmaster_address = postmaster@example.test
}
CONF
# optional DIR/local.conf, read last: its settings win (bench/ingest.py restores Dovecot's
# defaults for IDLE and fsync there)
echo "!include_try $D/local.conf" >> "$D/dovecot.conf"
case $CMD in
  start) exec /usr/sbin/dovecot -c "$D/dovecot.conf" ;;
  run)   exec /usr/sbin/dovecot -F -c "$D/dovecot.conf" ;;
  *) echo "usage: $0 start|run|stop DIR [PORT] [TLS_PORT]" >&2; exit 2 ;;
esac
