#!/usr/bin/env python3
"""(Copied from the project's shared tools; a client may also present --cert/--key.)

A 国密 TLS peer for interop tests: Tongsuo (BabaSSL 8.3.2, bundled in the `tongsuopy` wheel on PyPI),
driven through ctypes. It speaks RFC 8998 (TLS 1.3 with TLS_SM4_GCM_SM3 / TLS_SM4_CCM_SM3, curveSM2,
sm2sig_sm3; Tongsuo's strict mode) and TLCP (GB/T 38636, "NTLS": ECC-SM2-SM4-CBC-SM3 / ECC-SM2-SM4-GCM-SM3,
sign + enc certificate pair).

    pip install tongsuopy==1.0.1
    # an HTTPS request over RFC 8998 to a server, verifying it against ca.crt; prints the negotiated suite,
    # then the status line and body
    tongsuo_peer.py client --proto tls13 --connect 127.0.0.1:8443 --ca ca.crt --get /api/residents --host localhost
    # a server to test a client against (one connection, answers one HTTP request)
    tongsuo_peer.py server --proto tls13 --listen 127.0.0.1:9443 --cert sm2.crt --key sm2.key
    tongsuo_peer.py server --proto tlcp --listen 127.0.0.1:9443 --sign-cert s.crt --sign-key s.key \
                           --enc-cert e.crt --enc-key e.key

SM2 certificates with Debian's OpenSSL 3:
    openssl genpkey -algorithm SM2 -out ca.key
    openssl req -x509 -new -key ca.key -sm3 -sigopt distid:1234567812345678 -subj /CN=sm2-ca -days 30 -out ca.crt
    openssl genpkey -algorithm SM2 -out sm2.key
    openssl req -new -key sm2.key -sm3 -sigopt distid:1234567812345678 -subj /CN=localhost -out sm2.csr
    openssl x509 -req -in sm2.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sm3 -sigopt distid:1234567812345678 \
        -vfyopt distid:1234567812345678 -extfile <(printf 'subjectAltName=DNS:localhost') -days 30 -out sm2.crt
Exit status 0 only when the handshake succeeded (and, for --get, an HTTP status line came back).
Suites: --suite (TLS 1.3, default TLS_SM4_GCM_SM3) or --cipher (TLCP, default ECC-SM2-SM4-GCM-SM3).
"""
import argparse, ctypes, socket, sys

import tongsuopy.backends._tongsuo as _m

L = ctypes.CDLL(_m.__file__)
vp, ci, cs = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
for name, res, args in [
    ("OpenSSL_version", cs, [ci]),
    ("TLS_server_method", vp, []), ("TLS_client_method", vp, []),
    ("NTLS_server_method", vp, []), ("NTLS_client_method", vp, []),
    ("SSL_CTX_new", vp, [vp]), ("SSL_new", vp, [vp]), ("SSL_set_fd", ci, [vp, ci]),
    ("SSL_CTX_enable_ntls", None, [vp]), ("SSL_CTX_enable_sm_tls13_strict", None, [vp]),
    ("SSL_CTX_set_ciphersuites", ci, [vp, cs]), ("SSL_CTX_set_cipher_list", ci, [vp, cs]),
    ("SSL_CTX_use_certificate_file", ci, [vp, cs, ci]), ("SSL_CTX_use_PrivateKey_file", ci, [vp, cs, ci]),
    ("SSL_CTX_use_sign_certificate_file", ci, [vp, cs, ci]), ("SSL_CTX_use_sign_PrivateKey_file", ci, [vp, cs, ci]),
    ("SSL_CTX_use_enc_certificate_file", ci, [vp, cs, ci]), ("SSL_CTX_use_enc_PrivateKey_file", ci, [vp, cs, ci]),
    ("SSL_CTX_load_verify_locations", ci, [vp, cs, cs]), ("SSL_CTX_set_verify", None, [vp, ci, vp]),
    ("SSL_ctrl", ctypes.c_long, [vp, ci, ctypes.c_long, vp]), ("SSL_CTX_ctrl", ctypes.c_long, [vp, ci, ctypes.c_long, vp]),
    ("SSL_accept", ci, [vp]), ("SSL_connect", ci, [vp]), ("SSL_get_error", ci, [vp, ci]),
    ("SSL_get_version", cs, [vp]), ("SSL_get_current_cipher", vp, [vp]), ("SSL_CIPHER_get_name", cs, [vp]),
    ("SSL_write", ci, [vp, cs, ci]), ("SSL_read", ci, [vp, cs, ci]), ("SSL_shutdown", ci, [vp]),
    ("ERR_get_error", ctypes.c_ulong, []), ("ERR_error_string", cs, [ctypes.c_ulong, cs]),
]:
    f = getattr(L, name); f.restype = res; f.argtypes = args
PEM, SSL_CTRL_SET_MIN_PROTO_VERSION, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLS1_3 = 1, 123, 55, 0x0304


def errors():
    out = []
    while True:
        e = L.ERR_get_error()
        if not e:
            return "; ".join(out)
        out.append(L.ERR_error_string(e, None).decode())


def must(ok, what):
    if ok != 1:
        sys.exit("tongsuo_peer: %s failed: %s" % (what, errors()))


def context(a, server):
    if a.proto == "tlcp":
        c = L.SSL_CTX_new(L.NTLS_server_method() if server else L.NTLS_client_method())
        L.SSL_CTX_enable_ntls(c)
        must(L.SSL_CTX_set_cipher_list(c, a.cipher.encode()), "cipher list")
        if server:
            must(L.SSL_CTX_use_sign_certificate_file(c, a.sign_cert.encode(), PEM), "sign cert")
            must(L.SSL_CTX_use_sign_PrivateKey_file(c, a.sign_key.encode(), PEM), "sign key")
            must(L.SSL_CTX_use_enc_certificate_file(c, a.enc_cert.encode(), PEM), "enc cert")
            must(L.SSL_CTX_use_enc_PrivateKey_file(c, a.enc_key.encode(), PEM), "enc key")
    else:
        c = L.SSL_CTX_new(L.TLS_server_method() if server else L.TLS_client_method())
        L.SSL_CTX_enable_sm_tls13_strict(c)
        must(L.SSL_CTX_set_ciphersuites(c, a.suite.encode()), "ciphersuites")
        L.SSL_CTX_ctrl(c, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_3, None)
        if server:
            must(L.SSL_CTX_use_certificate_file(c, a.cert.encode(), PEM), "certificate")
            must(L.SSL_CTX_use_PrivateKey_file(c, a.key.encode(), PEM), "private key")
    if not server and a.cert:
        # a client certificate (mutual TLS), when the server asks for one
        must(L.SSL_CTX_use_certificate_file(c, a.cert.encode(), PEM), "client certificate")
        must(L.SSL_CTX_use_PrivateKey_file(c, a.key.encode(), PEM), "client key")
    if not server and a.ca:
        must(L.SSL_CTX_load_verify_locations(c, a.ca.encode(), None), "CA file")
        L.SSL_CTX_set_verify(c, 1, None)
    return c


def read_all(s, limit=1 << 24):
    buf, b = b"", ctypes.create_string_buffer(65536)
    while len(buf) < limit:
        n = L.SSL_read(s, b, 65536)
        if n <= 0:
            break
        buf += b.raw[:n]
    return buf


def handshake(a, sock, server):
    s = L.SSL_new(context(a, server))
    L.SSL_set_fd(s, sock.fileno())
    if not server and a.host:
        L.SSL_ctrl(s, SSL_CTRL_SET_TLSEXT_HOSTNAME, 0, ctypes.c_char_p(a.host.encode()))
    r = L.SSL_accept(s) if server else L.SSL_connect(s)
    if r != 1:
        sys.exit("tongsuo_peer: handshake failed (ssl error %d): %s" % (L.SSL_get_error(s, r), errors()))
    print("handshake ok: %s %s" % (L.SSL_get_version(s).decode(),
                                   L.SSL_CIPHER_get_name(L.SSL_get_current_cipher(s)).decode()), flush=True)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("role", choices=["client", "server"])
    ap.add_argument("--proto", choices=["tls13", "tlcp"], default="tls13")
    ap.add_argument("--suite", default="TLS_SM4_GCM_SM3")
    ap.add_argument("--cipher", default="ECC-SM2-SM4-GCM-SM3")
    ap.add_argument("--connect"); ap.add_argument("--listen")
    ap.add_argument("--ca"); ap.add_argument("--host")
    ap.add_argument("--get", help="send GET PATH over the connection and print the reply")
    ap.add_argument("--cert"); ap.add_argument("--key")
    ap.add_argument("--sign-cert"); ap.add_argument("--sign-key"); ap.add_argument("--enc-cert"); ap.add_argument("--enc-key")
    ap.add_argument("--header", action="append", default=[], help="extra request header for --get")
    a = ap.parse_args()
    print(L.OpenSSL_version(0).decode(), flush=True)
    if a.role == "client":
        host, port = a.connect.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
        sock.settimeout(None)  # OpenSSL needs a blocking descriptor
        s = handshake(a, sock, False)
        if a.get:
            req = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n" % (
                a.get, a.host or host, "".join(h + "\r\n" for h in a.header))
            L.SSL_write(s, req.encode(), len(req.encode()))
            reply = read_all(s)
            sys.stdout.write(reply.decode("utf-8", "replace") + "\n")
            if not reply.startswith(b"HTTP/1."):
                sys.exit("tongsuo_peer: no HTTP reply")
    else:
        host, port = a.listen.rsplit(":", 1)
        ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, int(port))); ls.listen(1)
        conn, _ = ls.accept()
        s = handshake(a, conn, True)
        b = ctypes.create_string_buffer(65536); L.SSL_read(s, b, 65536)
        body = b'{"ok":true}'
        resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        L.SSL_write(s, resp, len(resp)); L.SSL_shutdown(s)


if __name__ == "__main__":
    main()
