#!/bin/sh
# Regenerates the tunnel test fixtures (run once; the outputs are committed).
# RSA-1024 keeps tests fast; the product accepts 1024..4096 like the registry.
set -e
cd "$(dirname "$0")"
key() { openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$1.key"; }
# Network CA for 2001:db8:42::/48 (serial = marker bit + network bits).
key ca
openssl req -x509 -new -key ca.key -sha512 -days 36500 -subj "/CN=re6st test CA" \
  -set_serial 0x120010db80042 -out ca.crt
# Another CA with the same subject name: only the signature tells them apart.
key other-ca
openssl req -x509 -new -key other-ca.key -sha512 -days 36500 -subj "/CN=re6st test CA" \
  -set_serial 0x120010db80042 -out other-ca.crt
node() { # name cn serial ca [openssl x509 date options]
  key "$1"
  openssl req -new -key "$1.key" -subj "/CN=$(echo "$2" | sed "s,/,\\\\/,")" -out "$1.csr"
  n=$1; cn=$2; s=$3; ca=$4; shift 4
  openssl x509 -req -in "$n.csr" -CA "$ca.crt" -CAkey "$ca.key" -sha512 -set_serial "$s" "$@" -out "$n.crt"
  rm "$n.csr"
}
node alice 1/16 2 ca -days 36500
node bob 2/16 3 ca -days 36500
node revoked 3/16 4 ca -days 36500
node stranger 4/16 5 other-ca -days 36500
# Expired: valid for one day from creation; tests use a "now" years later
# (OpenSSL 3.0's x509 cannot backdate), see EXPIRED_NOT_AFTER in auth tests.
node expired 5/16 6 ca -days 1
for f in *.crt; do openssl x509 -in "$f" -outform DER -out "${f%.crt}.der"; done
rm -f ca.key other-ca.key *.crt
