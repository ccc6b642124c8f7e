#!/usr/bin/env bash
# make-certs.sh DIR: a throwaway PKI for the TLS tests, valid for two days.
#   ca.crt            the test CA
#   server.crt/.key   CN=localhost, signed by the CA
#   client.crt/.key   CN=fire-duty, signed by the CA
#   rogue-ca.crt, rogue.crt/.key   a client certificate from another CA
#   other.key         a key that matches no certificate
set -euo pipefail
cd "$1"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {  # ca NAME CN
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 2 -subj "/CN=$2" 2>/dev/null
}
leaf() {  # leaf NAME CN CA
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial \
        -out "$1.crt" -days 2 2>/dev/null
}
ca ca "linkd test CA"
ca rogue-ca "rogue CA"
leaf server localhost ca
leaf client fire-duty ca
leaf rogue fire-duty rogue-ca
key other.key
