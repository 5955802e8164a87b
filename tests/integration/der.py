"""Small DER (X.690) helpers for the integration tests: build the few ASN.1 types a CMS signature needs, and
read TLVs back out of certificates. Standard library only; no general ASN.1 compiler, just enough to be exact.

Encoders return bytes; `tlv` is the primitive, the named helpers fix the tag. Readers work on (data, offset)."""
import hashlib

# Tags (X.690 sec. 8): universal class, and the context-specific forms CMS uses.
INTEGER, OCTET_STRING, NULL, OID, UTF8_STRING = 0x02, 0x04, 0x05, 0x06, 0x0C
SEQUENCE, SET = 0x30, 0x31


def context(n, constructed=True):
    """Tag byte of [n] (context-specific, n < 31)."""
    return 0x80 | (0x20 if constructed else 0) | n


def length(n):
    """Definite length octets: short form below 128, else the minimal long form."""
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag, content):
    return bytes([tag]) + length(len(content)) + content


def sequence(*items):
    return tlv(SEQUENCE, b"".join(items))


def set_of(*items):
    """DER SET OF: the element encodings sorted as octet strings (X.690 sec. 11.6)."""
    return tlv(SET, b"".join(sorted(items)))


def integer(n):
    """Two's complement, minimal octets (a leading 0x00 keeps a positive value positive)."""
    if n == 0:
        return tlv(INTEGER, b"\x00")
    size = (n.bit_length() + 8) // 8  # room for the sign bit
    body = n.to_bytes(size, "big", signed=True)
    while len(body) > 1 and ((body[0] == 0x00 and body[1] < 0x80) or (body[0] == 0xFF and body[1] >= 0x80)):
        body = body[1:]
    return tlv(INTEGER, body)


def oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError("bad OID " + dotted)
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1]] + arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(OID, bytes(out))


def octet_string(data):
    return tlv(OCTET_STRING, data)


def null():
    return tlv(NULL, b"")


def explicit(n, inner):
    """[n] EXPLICIT: a constructed context tag around the whole inner encoding."""
    return tlv(context(n), inner)


def implicit(n, encoding):
    """[n] IMPLICIT: the inner encoding's tag replaced, its constructed bit kept."""
    constructed = bool(encoding[0] & 0x20)
    return bytes([context(n, constructed)]) + encoding[1:]


def algorithm(dotted, params=None):
    """AlgorithmIdentifier; params is an encoding (e.g. null()) or None for absent."""
    return sequence(oid(dotted), *([params] if params is not None else []))


# ---- reading -------------------------------------------------------------------------------------------

def read(data, off=0):
    """The TLV at off: (tag, start of contents, end of contents). Definite lengths only (DER)."""
    if off + 2 > len(data):
        raise ValueError("truncated TLV at %d" % off)
    tag = data[off]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte tags are not used here")
    first = data[off + 1]
    pos = off + 2
    if first < 0x80:
        n = first
    else:
        k = first & 0x7F
        if k == 0 or k > 4 or pos + k > len(data):
            raise ValueError("bad length at %d" % off)
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    if pos + n > len(data):
        raise ValueError("TLV at %d overruns its container" % off)
    return tag, pos, pos + n


def element(data, off=0):
    """The whole encoding (header included) of the TLV at off."""
    _, _, end = read(data, off)
    return data[off:end]


def children(data, off=0):
    """The encodings of the elements inside the constructed TLV at off."""
    _, pos, end = read(data, off)
    out = []
    while pos < end:
        _, _, nxt = read(data, pos)
        out.append(data[pos:nxt])
        pos = nxt
    return out


def decode_oid(encoding):
    tag, pos, end = read(encoding)
    if tag != OID:
        raise ValueError("not an OID")
    arcs, arc = [], 0
    for b in encoding[pos:end]:
        arc = (arc << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(arc)
            arc = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first] + arcs[1:])


class Certificate:
    """The parts of an X.509 certificate (RFC 5280 sec. 4.1) a CMS signer needs, as DER encodings."""

    def __init__(self, der):
        self.der = bytes(der)
        cert = children(self.der)
        if len(cert) != 3:
            raise ValueError("not a Certificate")
        tbs = children(cert[0])
        if tbs[0][0] == context(0):  # [0] EXPLICIT version
            tbs = tbs[1:]
        self.serial = tbs[0]  # INTEGER encoding
        self.issuer = tbs[2]  # Name encoding
        self.subject = tbs[4]
        self.spki = tbs[5]

    def sha256(self):
        return hashlib.sha256(self.der).digest()


# ---- CMS (RFC 5652) for detached CAdES / PAdES signatures ------------------------------------------------

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
ID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
ID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
ID_SIGNING_TIME = "1.2.840.113549.1.9.5"
ID_SIGNING_CERT_V2 = "1.2.840.113549.1.9.16.2.47"  # RFC 5035
ID_SHA256 = "2.16.840.1.101.3.4.2.1"


def attribute(type_oid, *values):
    """Attribute ::= SEQUENCE { attrType OID, attrValues SET OF AttributeValue }."""
    return sequence(oid(type_oid), set_of(*values))


def issuer_serial(cert):
    """IssuerSerial (RFC 5035): GeneralNames with the issuer as directoryName [4], and the serial."""
    return sequence(sequence(explicit(4, cert.issuer)), cert.serial)


def signing_certificate_v2(cert):
    """SigningCertificateV2 with one ESSCertIDv2; hashAlgorithm is left out since SHA-256 is its DEFAULT
    (DER omits defaults)."""
    return sequence(sequence(sequence(octet_string(cert.sha256()), issuer_serial(cert))))


def cades_signed_attrs(content_digest, signer):
    """The DER SET OF signed attributes of a PAdES baseline-B signature (ETSI EN 319 142-1 sec. 5.3):
    content-type id-data, message-digest, signing-certificate-v2; no signing-time (the PDF's /M holds it).
    This SET (tag 0x31) is what gets hashed and signed; SignerInfo carries it as [0] IMPLICIT."""
    return set_of(attribute(ID_CONTENT_TYPE, oid(ID_DATA)),
                  attribute(ID_MESSAGE_DIGEST, octet_string(content_digest)),
                  attribute(ID_SIGNING_CERT_V2, signing_certificate_v2(signer)))


def signed_data(signed_attrs, signature_alg, signature, signer, certs):
    """ContentInfo(SignedData) of a detached signature: version 1, SHA-256, eContentType id-data without
    eContent, the certificates (DER encodings), and one SignerInfo identified by issuer and serial."""
    signer_info = sequence(integer(1), sequence(signer.issuer, signer.serial), algorithm(ID_SHA256),
                           implicit(0, signed_attrs), signature_alg, octet_string(signature))
    sd = sequence(integer(1), set_of(algorithm(ID_SHA256)), sequence(oid(ID_DATA)),
                  implicit(0, set_of(*certs)), set_of(signer_info))
    return sequence(oid(ID_SIGNED_DATA), explicit(0, sd))
