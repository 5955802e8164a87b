/*
 * sam_wire.h - the protocol between the front end (csc-server, csc-admin) and the signature activation module
 * (csc-sam): message encoding, one strict decoder, a builder, and framing over an AF_UNIX SOCK_SEQPACKET socket.
 *
 * The whole protocol is specified here and in docs/architecture.md ("The SAM protocol"); sam/README.md says how
 * to use this module. Nothing in it knows what a SAD or a key is: it moves bounded, validated fields.
 *
 * TRANSPORT
 *   One AF_UNIX SOCK_SEQPACKET connection per client; the SAM checks the peer with SO_PEERCRED (sam_peer()).
 *   One datagram carries one record of at most SAM_RECORD_MAX bytes (header included). A message is one or more
 *   records with the same op and request id; every record but the last has SAM_FLAG_MORE and carries exactly
 *   SAM_RECORD_PAYLOAD_MAX payload bytes (so a message has one splitting only). A message body is at most
 *   SAM_MSG_MAX bytes. The SAM answers each request with one message of the same request id: op | SAM_OP_REPLY
 *   with the op's result fields, or SAM_OP_REFUSED with a refusal code (SAM_REFUSE_*) and a reason.
 *
 * RECORD HEADER (SAM_HDR_LEN = 16 bytes, every integer big-endian)
 *   offset 0  u16  magic       SAM_MAGIC ("SA")
 *   offset 2  u8   version     SAM_VERSION (1)
 *   offset 3  u8   op          SAM_OP_* (a request op, op | SAM_OP_REPLY, or SAM_OP_REFUSED)
 *   offset 4  u16  flags       SAM_FLAG_MORE; every other bit must be 0
 *   offset 6  u16  reserved    must be 0
 *   offset 8  u32  request id  chosen by the requester, echoed by the reply
 *   offset 12 u32  length      payload bytes of this record = datagram length - 16
 *
 * FLAT FORM
 *   What the builder produces, sam_recv() reassembles and sam_msg_decode() reads: one header (flags 0, length =
 *   the whole body) followed by the body. sam_send() cuts it into records.
 *
 * BODY
 *   A sequence of fields, each: u16 tag, u32 length, length bytes of value. Canonical: tags strictly ascending,
 *   except that the values of a repeated field follow each other (so exactly one encoding exists for a set of
 *   values). Each op has one table (sam_op_spec()) listing the tags it allows and, per tag: its type
 *   (SAM_TYPE_U32: exactly 4 bytes; SAM_TYPE_U64: exactly 8; SAM_TYPE_BYTES; SAM_TYPE_TEXT: UTF-8 without NUL,
 *   no terminator on the wire), value or length bounds, and how many times it may occur (min 1 = required). Rows
 *   with the same non-zero one_of group: exactly one of them is present.
 *
 * THE DECODER (sam_msg_decode()) refuses: a short header, bad magic or version, an unknown op, flags or reserved
 *   bits set, a declared length that disagrees with the buffer (short: TRUNCATED, long: TRAILING), a body over
 *   SAM_MSG_MAX, a tag the op does not list, tags out of order, a non-repeatable tag twice or a repeated one
 *   more than its max, a length or value out of bounds, invalid UTF-8 or a NUL in a TEXT, a field cut short,
 *   a missing required field, and a one_of group without exactly one member. It copies nothing: sam_msg_t points
 *   into the caller's buffer, which must outlive it.
 *
 * ERRORS
 *   Every function that can fail returns SAM_OK (0) or a negative SAM_ERR_* (sam_strerror()). After any error
 *   of sam_send() or sam_recv() the connection is in an unknown state (a message half sent or half read): the
 *   caller must close it.
 *
 * SECRETS
 *   Messages carry PINs, OTPs, tokens and SADs. The builder and the receive buffer wipe their memory
 *   (OPENSSL_cleanse) when they grow and when they are freed; a caller that copies a field out wipes its copy.
 *
 * THREAD-SAFETY
 *   No global state: every function may run on any thread at once, on different objects. A builder, a receive
 *   buffer or a sam_msg_t belongs to one thread at a time. On one socket, at most one thread sends and at most
 *   one receives at a time (records of two messages sent at once would interleave, which the receiver refuses).
 */
#ifndef SAM_WIRE_H
#define SAM_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAM_MUST_CHECK __attribute__((warn_unused_result))

/* ---- framing ---------------------------------------------------------------------------------------------- */

#define SAM_MAGIC 0x5341u      /**< "SA" */
#define SAM_VERSION 1u
#define SAM_HDR_LEN 16u        /**< record header */
#define SAM_FIELD_HDR 6u       /**< field header: u16 tag, u32 length */
#define SAM_RECORD_MAX 65536u  /**< one datagram, header included: fits the default socket buffers of Linux */
#define SAM_RECORD_PAYLOAD_MAX (SAM_RECORD_MAX - SAM_HDR_LEN)
/** Largest message body: the largest reply, SIGN's 1024 signatures of SAM_SIG_MAX bytes with their field
 *  headers (1,054,720 bytes), plus room; 18 records at most. */
#define SAM_MSG_MAX (1088u * 1024u)
#define SAM_FLAG_MORE 0x0001u  /**< another record of this message follows */

/* ---- bounds of field values (checked against storage/, hsm/ and oauth/ in sam_schema.c) --------------------- */

#define SAM_NAME_MAX 64          /**< user names, credential ids (STOR_NAME_MAX) */
#define SAM_OID_MAX 40           /**< dotted OID text (STOR_OID_MAX) */
#define SAM_DIGESTS_MAX 1024     /**< digests of one request (STOR_DIGESTS_MAX) */
#define SAM_DIGEST_LEN_MAX 64    /**< one digest (STOR_DIGEST_LEN_MAX) */
#define SAM_SIG_MAX 1024         /**< one signature (HSM_SIG_MAX) */
#define SAM_HEAD_SIG_MAX 160     /**< a signed audit head's DER ECDSA signature (STOR_HEAD_SIG_MAX) */
#define SAM_TOKEN_MAX 512        /**< access token, SAD, handle, session, code as a client may send them (csc-api
                                      takes SADs of up to 512 characters; issued values have 43) */
#define SAM_SECRET_MAX 1024      /**< PIN (oauth/'s longest verified secret) */
#define SAM_OTP_MAX 256          /**< OTP or challenge code as sent (csc-api's longest authData value; valid
                                      ones have 6 digits) */
#define SAM_CLIENT_MAX 255       /**< client id / address text for the audit record */
#define SAM_ADDR_MAX 63          /**< client address for rate limits (oauth/ keeps 63 bytes) */
#define SAM_DESCRIPTION_MAX 500  /**< credentials/authorize description */
#define SAM_PSS_PARAMS_MAX 256   /**< DER RSASSA-PSS-params */
#define SAM_NONCE_MAX 32         /**< time-stamp nonce (256 bits) */
#define SAM_TST_MAX (256u * 1024u) /**< DER RFC 3161 time-stamp token */
#define SAM_REASON_MAX 255       /**< refusal reason, destroy reason */
#define SAM_IDENTITY_MAX 255     /**< HELLO: the SAM's identity text */
#define SAM_EXPR_MAX 64          /**< auth expression (STOR_EXPR_MAX) */
#define SAM_CERT_MAX 16384       /**< one DER certificate or request (STOR_CERTS_MAX) */
#define SAM_CERTS_MAX 16         /**< certificates of one chain */
#define SAM_BACKUP_MAX 65536     /**< a backup file's content */
#define SAM_PUBKEY_MAX 2048      /**< DER SubjectPublicKeyInfo */
#define SAM_SIGNED_TEXT_MAX 255  /**< AUDIT_REPORT's signed text */
#define SAM_LINE_MAX 512         /**< one line of a report (longer ones are cut) */
#define SAM_LINES_MAX 1024       /**< lines of one report (more: the last says so) */
#define SAM_ORIGIN_MAX 400       /**< an operator op's ORIGIN claim */

/* ---- ops ---------------------------------------------------------------------------------------------------- */

/** Request ops. A reply is op | SAM_OP_REPLY (its own table) or SAM_OP_REFUSED. */
enum {
    /* the front end's socket */
    SAM_OP_HELLO = 1,           /**< the health check: protocol version, SAM identity, HSM and storage state */
    SAM_OP_AUTHORIZE = 2,       /**< credentials/authorize: factors -> SAD, or a pending approval handle */
    SAM_OP_AUTHORIZE_CHECK = 3, /**< credentials/authorizeCheck: handle -> SAD, pending, or refusal */
    SAM_OP_EXTEND = 4,          /**< credentials/extendTransaction: SAD -> new SAD */
    SAM_OP_SIGN = 5,            /**< signatures/signHash: all digests of the request -> signatures, same order */
    SAM_OP_STAMP = 6,           /**< signatures/timestamp: digest -> DER time-stamp token */
    SAM_OP_CHALLENGE = 7,       /**< credentials/getChallenge: make and deliver a one-time code */
    SAM_OP_APPROVE = 8,         /**< the /approve page's decision on a pending authorization */
    SAM_OP_CONSENT = 9,         /**< the OAuth consent page's decision in a browser session (PIN) -> authorization code */
    SAM_OP_AUDIT_HEAD = 10,     /**< the operators' socket (csc-admin audit sign-head): sign the audit log's head now;
                                     csc-sam signs the periodic heads itself, unasked */
    SAM_OP_SIGN_RESERVED = 11,  /**< operationMode "A": sign what a SIGN with ASYNC reserved (TICKET), or give it back */
    SAM_OP_ENROLL_BEGIN = 12,   /**< /enroll step 1: name + enrollment code -> ticket, TOTP secret, credentials waiting
                                     for a PIN (or the same again for a ticket) */
    SAM_OP_ENROLL_FINISH = 13,  /**< /enroll step 2: ticket, password, first TOTP code, PINs -> the user is active */
    SAM_OP_ACCOUNT_PIN = 14,    /**< /account: set the PIN of a credential waiting for the signed-in user's PIN */
    SAM_OP_ACCOUNT_RESTORE = 19,/**< /account: the signed-in owner's request to restore a credential's key -> reference */
    SAM_OP_LOGIN = 15,          /**< the pages' sign-in: name, password, TOTP code -> a browser session csc-sam made */
    SAM_OP_ACCOUNT_PASSWORD = 16, /**< /account: old password, new password -> the user's password replaced */
    SAM_OP_ACCOUNT_TOTP_BEGIN = 17, /**< /account: a code of the old TOTP secret -> a pending new secret (a ticket) */
    SAM_OP_ACCOUNT_TOTP_FINISH = 18, /**< /account: the ticket and a code of the new secret -> the TOTP replaced */
    SAM_OP_AUDIT_REPORT = 23,   /**< the operators' socket (csc-admin audit report): the audit key signs a text naming
                                     the report's SHA-256 (DIGEST) -> SIGNED_TEXT, SIGNATURE */
    SAM_OP_BACKUP_SIGN = 24,    /**< the operators' socket (csc-admin db backup): the same for a database backup's SHA-256
                                     (its text "csc-db-backup v1 ...") */
    SAM_OP_API_LOGIN = 22,      /**< auth/login with a password: name, password, rememberMe -> access (and refresh)
                                     token; csc-sam checks the password, counts failures, locks out, records */
    /* the operators' socket (sam_admin_socket; sam/sam_op_keys.c): csc-admin's key operations, served nowhere else */
    SAM_OP_KEY_CREATE = 32,     /**< adm_cred_create: key pair, certificate or PKCS#10 request, credential */
    SAM_OP_KEY_DESTROY = 33,    /**< adm_cred_destroy */
    SAM_OP_BACKUP_INIT = 34,    /**< adm_backup_init: the backup keys (SO PIN) */
    SAM_OP_BACKUP = 35,         /**< adm_cred_backup: the wrapped backup's content */
    SAM_OP_RESTORE = 36,        /**< adm_cred_restore */
    SAM_OP_CSR = 37,            /**< adm_cred_renew_csr: new key pending, its PKCS#10 request */
    SAM_OP_CERT_IMPORT = 38,    /**< adm_cred_import: certificate for a pending key (destroys a renewed-away key) */
    SAM_OP_TSA_KEY = 39,        /**< adm_tsa_init: the time-stamping unit of the SAM's tsa_credential */
    SAM_OP_AUDIT_KEY = 40,      /**< adm_audit_key_init (csc-admin audit key-init, init) */
    SAM_OP_DESTROY_PENDING = 41,/**< adm_cred_destroy_pending: the key destructions the CRL sweep filed (report lines) */
    SAM_OP_USER_TERMINATE = 42, /**< adm_user_set_status TERMINATED: the user ends, every key of theirs destroyed */
    SAM_OP_RENEW = 43,          /**< adm_cred_renew: new key and certificate from the SAM's CA, old key destroyed */
    SAM_OP_AUDIT_PUBKEY = 44,   /**< the audit key's public key (csc-admin audit export-key, audit verify) */
    SAM_OP_ENROLL_ISSUE = 45,   /**< csc-admin user add / user recover: a one-time enrollment code, sent or for a letter */
    SAM_OP_OPERATOR_LOGIN = 46, /**< csc-admin login: name, password, TOTP code -> an operator session (sam_op_operator.c) */
    SAM_OP_OPERATOR_ENROLL_BEGIN = 47,  /**< csc-admin operator enroll: name + enrollment code -> ticket, TOTP secret */
    SAM_OP_OPERATOR_ENROLL_FINISH = 48, /**< csc-admin operator enroll: ticket, password, first TOTP code -> active */
    SAM_OP_OPERATOR_NEW = 49,   /**< csc-admin operator bootstrap (no SESSION: the first operator, its TOTP secret made
                                     and sealed here) and operator add (SESSION, ROLES: an enrollment code) */
    /* the front end's socket again (sam/sam_op_token.c) */
    SAM_OP_TOKEN = 20,          /**< /oauth2/token (GRANT_TYPE) and auth/login with a refresh token: the client
                                     authenticated, the code or refresh token checked and spent here -> tokens */
    SAM_OP_REVOKE = 21,         /**< /oauth2/revoke (the client authenticated here) and auth/revoke (the caller's
                                     bearer TOKEN checked here): the token REVOKE_TOKEN names revoked */

    SAM_OP_REPLY = 0x80,        /**< bit of every successful reply */
    SAM_OP_REFUSED = 0xff,      /**< the refusal of any request: REFUSAL, REASON, optional ABOUT */
};

/** Refusal codes (tag SAM_T_REFUSAL of SAM_OP_REFUSED); SAM_T_ABOUT names the field the refusal is about
 *  (e.g. UNAUTHORIZED about SAM_T_TOKEN: the access token; about SAM_T_SAD: the SAD; none: the factors). */
enum {
    SAM_REFUSE_BAD_MESSAGE = 1, /**< the request did not decode or a value is unusable */
    SAM_REFUSE_UNAUTHORIZED = 2,/**< a factor, token or SAD is wrong, unknown, or another user's */
    SAM_REFUSE_EXPIRED = 3,     /**< token, SAD, handle or operator session past its expiry */
    SAM_REFUSE_EXHAUSTED = 4,   /**< the SAD's budget is smaller than the request */
    SAM_REFUSE_NOT_BOUND = 5,   /**< a digest (or hash algorithm) not bound to the SAD, or already signed */
    SAM_REFUSE_DISABLED = 6,    /**< user or credential not active */
    SAM_REFUSE_LOCKED = 7,      /**< too many failures: locked for a while */
    SAM_REFUSE_BUSY = 8,        /**< too many secret checks at once: retry later (nothing was checked) */
    SAM_REFUSE_UNAVAILABLE = 9, /**< HSM or storage unavailable (the database out of reach: SAM_REFUSE_DB_DOWN) */
    SAM_REFUSE_INTERNAL = 10,   /**< anything else */
    SAM_REFUSE_NOT_FOUND = 11,  /**< unknown credential, handle, approval (or another user's: same answer) */
    SAM_REFUSE_RATE = 12,       /**< asked again too soon (a challenge code) */
    SAM_REFUSE_FULL = 13,       /**< too many pending approvals, challenges or sessions */
    SAM_REFUSE_FORBIDDEN = 14,  /**< the operator's role does not allow the op */
    SAM_REFUSE_NOT_OFFERED = 15,/**< the service does not offer it (no TSA key, no OTP sender) */
    SAM_REFUSE_EXISTS = 16,     /**< the object exists already */
    SAM_REFUSE_REVOKED = 17,    /**< SIGN: the certificate is revoked according to the SAM's CRLs */
    SAM_REFUSE_SUSPENDED = 18,  /**< SIGN: the certificate is on hold (certificateHold) */
    SAM_REFUSE_CERT_UNKNOWN = 19, /**< SIGN: the certificate's revocation status cannot be confirmed (no CRL of its
                                       issuer when one is required, a CRL past its nextUpdate, unreadable) */
    SAM_REFUSE_DB_DOWN = 20,    /**< the database cannot be reached now (STOR_ERR_UNAVAILABLE): nothing was done; a
                                     try a second later may work (the front end answers 503 with Retry-After: 1) */
    SAM_REFUSE_CLOCK = 21,      /**< STAMP: the system clock is not synchronised (clock_check): no token now */
    SAM_REFUSE_MAX = 21,
};

/* ---- field tags (one meaning each in every op; which ops take which: sam_op_spec()) -------------------------- */

enum {
    SAM_T_VERSION = 1,        /**< U32 protocol version */
    SAM_T_IDENTITY = 2,       /**< TEXT the SAM's identity */
    SAM_T_HSM_STATE = 3,      /**< U32 SAM_HSM_READY or SAM_HSM_UNAVAILABLE */
    SAM_T_TOKEN = 4,          /**< TEXT the caller's bearer access token (the SAM resolves the user itself) */
    SAM_T_CRED = 5,           /**< TEXT credential id */
    SAM_T_USER = 6,           /**< TEXT user name */
    SAM_T_NUM_SIGNATURES = 7, /**< U32 numSignatures */
    SAM_T_HASH_ALG = 8,       /**< TEXT dotted OID of the digests */
    SAM_T_DIGEST = 9,         /**< BYTES one digest (repeated, in request order) */
    SAM_T_PIN = 10,           /**< TEXT PIN (BACKUP_INIT: the token's SO PIN) */
    SAM_T_OTP = 11,           /**< TEXT TOTP code */
    SAM_T_CHALLENGE = 12,     /**< TEXT one-time code of credentials/getChallenge */
    SAM_T_CLIENT = 13,        /**< TEXT client id and address, for the audit record */
    SAM_T_DESCRIPTION = 14,   /**< TEXT description */
    SAM_T_SAD = 15,           /**< TEXT SAD value */
    SAM_T_EXPIRES_IN = 16,    /**< U32 seconds */
    SAM_T_HANDLE = 17,        /**< TEXT pending approval handle */
    SAM_T_PENDING = 18,       /**< U32 1: the approval is still pending */
    SAM_T_SIGN_ALG = 19,      /**< TEXT dotted OID of the signature algorithm */
    SAM_T_PSS_PARAMS = 20,    /**< BYTES DER RSASSA-PSS-params */
    SAM_T_ASYNC = 21,         /**< U32 1: operationMode "A" */
    SAM_T_SIGNATURE = 22,     /**< BYTES one signature (repeated, in digest order) */
    SAM_T_NONCE = 23,         /**< BYTES time-stamp nonce (big-endian integer) */
    /* 24: not used (a TSA policy: the SAM's own, never the front end's) */
    SAM_T_TST = 25,           /**< BYTES DER time-stamp token */
    SAM_T_APPROVAL_REF = 26,  /**< BYTES 16: a pending approval as the page names it */
    SAM_T_SESSION = 27,       /**< TEXT browser session id (APPROVE, CONSENT) or csc-admin session token */
    SAM_T_DECISION = 28,      /**< U32 1 approve, 0 refuse */
    SAM_T_ADDR = 29,          /**< TEXT client address (rate limits) */
    SAM_T_CODE = 30,          /**< TEXT OAuth authorization code */
    SAM_T_SEQ = 31,           /**< U64 audit record sequence number */
    SAM_T_HEAD_HASH = 32,     /**< BYTES 32: hash of the audit record at SEQ */
    SAM_T_TIME_MS = 33,       /**< U64 unix milliseconds */
    SAM_T_REFUSAL = 34,       /**< U32 SAM_REFUSE_* */
    SAM_T_REASON = 35,        /**< TEXT a reason for people (refusal, destruction) */
    SAM_T_ABOUT = 36,         /**< U32 the tag of the field a refusal is about */
    SAM_T_APPROVAL_ID = 37,   /**< TEXT a two-person request id (operator ops) */
    SAM_T_KEY_TYPE = 38,      /**< U32 SAM_KEY_RSA or SAM_KEY_EC */
    SAM_T_KEY_BITS = 39,      /**< U32 RSA modulus bits */
    SAM_T_CURVE = 40,         /**< TEXT dotted OID of the EC curve */
    SAM_T_AUTH_EXPR = 41,     /**< TEXT auth expression ("PIN AND OTP") */
    SAM_T_SCAL = 42,          /**< U32 1 or 2 */
    SAM_T_MULTISIGN = 43,     /**< U32 */
    SAM_T_SUBJECT_CN = 44,    /**< TEXT */
    SAM_T_SUBJECT_O = 45,     /**< TEXT */
    SAM_T_SUBJECT_C = 46,     /**< TEXT two letters */
    SAM_T_QUALIFIER = 47,     /**< TEXT signatureQualifier */
    SAM_T_OAUTH2CODE = 48,    /**< U32 1: authorized only through OAuth 2.0 */
    SAM_T_CSR_WANTED = 49,    /**< U32 1: answer a PKCS#10 request instead of a demo-CA certificate */
    SAM_T_CERT = 50,          /**< BYTES one DER certificate (repeated: end entity first) */
    SAM_T_CSR = 51,           /**< BYTES DER PKCS#10 request */
    SAM_T_BACKUP_BLOB = 52,   /**< BYTES a backup file's content */
    SAM_T_PUBKEY = 53,        /**< BYTES DER SubjectPublicKeyInfo */
    SAM_T_CREATED = 54,       /**< U32 what was created now (0: it existed) */
    SAM_T_STORAGE_STATE = 55, /**< U32 SAM_HSM_READY (the database is open and readable) or SAM_HSM_UNAVAILABLE */
    SAM_T_CMS = 56,           /**< U32 per digest (SIGN): sign CMS signed attributes over it, SAM_CMS_* */
    SAM_T_TICKET = 57,        /**< BYTES 16: a reservation of SIGN with ASYNC (signed later by SIGN_RESERVED) */
    SAM_T_CSRF = 58,          /**< TEXT the anti-CSRF token the page's form carried (CONSENT, APPROVE) */
    SAM_T_LINE = 59,          /**< TEXT one line of an operator op's report (repeated, in order) */
    SAM_T_SESSIONS = 60,      /**< U32 the token's open PKCS#11 sessions (AUDIT_KEY: csc-admin init's report) */
    SAM_T_CONTACT = 61,       /**< TEXT where the enrollment code goes (e-mail address, phone number) */
    SAM_T_EVIDENCE = 62,      /**< TEXT reference to the identity-verification evidence */
    SAM_T_APPLICANT = 63,     /**< TEXT reference to the applicant */
    SAM_T_MANDATE = 64,       /**< TEXT reference to an applicant's mandate */
    SAM_T_LETTER = 65,        /**< U32 1: answer the enrollment code (for a sealed letter) instead of sending it */
    SAM_T_KIND = 66,          /**< U32 SAM_ENROLL_NEW (user add) or SAM_ENROLL_RECOVER (user recover) */
    SAM_T_ENROLL_TICKET = 67, /**< TEXT the ticket of /enroll's step 2 (its cookie) */
    SAM_T_PASSWORD = 68,      /**< TEXT the password the user chose */
    SAM_T_TOTP_SECRET = 69,   /**< BYTES the TOTP secret made for the enrollment (shown only on /enroll) */
    SAM_T_ENROLL_CODE = 70,   /**< TEXT a one-time enrollment code (XXXX-XXXX-XXXX-XXXX) */
    SAM_T_ORIGIN = 71,        /**< TEXT csc-admin's claim of its OS user, host, terminal and host identity (every
                                   operator op; adm_origin_claim): csc-sam reads the uid from SO_PEERCRED itself */
    SAM_T_AUTHZ_REQ = 72,     /**< BYTES the authorization request a sign-in's session is for, field by field
                                   (oauth_req_encode; csc-sam decodes it with oauth_req_decode, as a stored session) */
    SAM_T_OLD_SECRET = 73,    /**< TEXT the factor being replaced, as typed (the old password or the old PIN) */
    SAM_T_RESTORE_REF = 74,   /**< TEXT a restore request's reference ("RR-" + 12 characters; ACCOUNT_RESTORE, RESTORE) */
    SAM_T_ROLES = 76,         /**< U32 an operator's roles (stor_role_t bits); above ORIGIN, so put before it
                                   (srv_opsock_put_origin) */
    SAM_T_REMEMBER = 77,      /**< U32 1: auth/login's rememberMe (a refresh token too) */
    SAM_T_REFRESH_TOKEN = 78, /**< TEXT a refresh token: issued (API_LOGIN, TOKEN replies) or presented (TOKEN) */
    SAM_T_GRANT_TYPE = 79,    /**< U32 SAM_GRANT_* (TOKEN) */
    SAM_T_CLIENT_ID = 80,     /**< TEXT an OAuth client's id, as the client presented it (csc-sam authenticates it) */
    SAM_T_CLIENT_SECRET = 81, /**< TEXT that client's secret, as presented */
    SAM_T_REDIRECT_URI = 82,  /**< TEXT the token request's redirect_uri ("" stands for one that cannot match) */
    SAM_T_VERIFIER = 83,      /**< TEXT the PKCE code_verifier ("" stands for one that cannot be valid) */
    /* 84: unused (was a second refresh-token tag, now REFRESH_TOKEN's) */
    SAM_T_SCOPE = 85,         /**< U32 the issued token's scope (stor_scope_t: 1 service, 2 credential) */
    SAM_T_AUTHZ_DETAILS = 86, /**< TEXT the approved authorization_details a credential token carries (JSON) */
    SAM_T_REVOKE_TOKEN = 87,  /**< TEXT the token a revocation names (REVOKE) */
    SAM_T_CRL_RELOAD = 88,    /**< U32 1: SIGN: the front end's CRL store says the certificate is not good; csc-sam
                                   looks at its CRL folder (pki_crl_reload) before its own check, which alone decides */
    SAM_T_TICKET_KEY = 89,    /**< BYTES SAM_TICKET_KEY_LEN: HELLO's reply on the front end's socket only: the key the
                                   sign-in pages' tickets are MACed under (a secret: derived from the HSM's factor key,
                                   the same on every node and after a restart; never logged, wiped after use) */
    SAM_T_REQUEST_ID = 90,    /**< TEXT SIGN, AUTHORIZE: the HTTP request's id ([A-Za-z0-9._-]{1,64}, csc-server's
                                   X-Request-Id), written into the audit record's detail as request_id=ID */
    SAM_T_SIGNED_TEXT = 91,   /**< TEXT what the audit key signed (AUDIT_REPORT's and BACKUP_SIGN's replies) */
    SAM_T_HSM_WAITS = 92,     /**< U64 HELLO's reply: how many times a signature waited for a free session of csc-sam's
                                   PKCS#11 pool (hsm_session_waits), for csc-server's /metrics */
    SAM_T_HEAP_IN_USE = 93,   /**< U64 HELLO's reply: bytes of csc-sam's malloc blocks in use (a slow leak raises it) */
    SAM_T_HEAP_HELD = 94,     /**< U64 HELLO's reply: bytes csc-sam's heaps hold (in use, free, and the reserve:
                                   sam_heap_reserve), for csc-server's /metrics */
    SAM_TAG_LIMIT = 96,       /**< every tag is below this */
};

enum { SAM_HSM_READY = 0, SAM_HSM_UNAVAILABLE = 1 };
/** TOKEN's GRANT_TYPE: the token endpoint's grants (CLIENT_ID and CLIENT_SECRET required) and auth/login's refresh
 *  (no client; CLIENT names the caller for the audit record). */
enum { SAM_GRANT_CODE = 1, SAM_GRANT_REFRESH = 2, SAM_GRANT_CLIENT_CREDENTIALS = 3, SAM_GRANT_LOGIN_REFRESH = 4 };
#define SAM_CLIENT_SECRET_MAX 256 /**< a client secret (oauth/'s OAUTH_CLIENT_SECRET_MAX: a longer one is wrong) */
#define SAM_URI_MAX 512          /**< a redirect URI (STOR_URI_MAX: a longer one matches no registered URI) */
#define SAM_VERIFIER_MAX 128     /**< a PKCE code_verifier (RFC 7636: 43..128 characters) */
#define SAM_AUTHZ_DETAILS_MAX 4096 /**< approved authorization_details (STOR_AUTHZ_DETAILS_MAX) */
enum { SAM_ENROLL_NEW = 1, SAM_ENROLL_RECOVER = 2 };
#define SAM_ENROLL_CODE_MAX 64   /**< an enrollment code as typed (valid ones: 16 characters, dashes and spaces aside) */
#define SAM_PASSWORD_MAX 128     /**< a password a user chooses (password_min_length's upper bound) */
#define SAM_CONTACT_MAX 128      /**< a user's contact (STOR_CONTACT_MAX) */
#define SAM_ENROLL_CREDS_MAX 32  /**< credentials waiting for one user's PIN that one enrollment names */
enum { SAM_KEY_RSA = 1, SAM_KEY_EC = 2 };
/** SAM_T_CMS: the SAM signs the CMS signed attributes it builds over the (bound) digest: content-type id-data,
 *  message-digest, ESS signing-certificate-v2 of the credential's certificate, and signing-time (CAdES) or not
 *  (PAdES); the reply's TIME_MS is the signing time it used, so the front end can build the same attributes. */
enum { SAM_CMS_SIGNING_TIME = 1, SAM_CMS_NO_TIME = 2 };
#define SAM_TICKET_LEN 16
#define SAM_TICKET_KEY_LEN 32    /**< SAM_T_TICKET_KEY: oauth/'s OAUTH_TICKET_KEY_LEN */
#define SAM_REQUEST_ID_MAX 64    /**< REQUEST_ID: an HTTP request's id */
#define SAM_DETAIL_MAX 200       /**< SIGN's DESCRIPTION: the front end's words for the audit record's detail */

/* ---- errors ------------------------------------------------------------------------------------------------- */

enum {
    SAM_OK = 0,
    SAM_ERR_TRUNCATED = -1,   /**< short header, a field cut short, or a declared length past the buffer */
    SAM_ERR_MAGIC = -2,
    SAM_ERR_VERSION = -3,
    SAM_ERR_OP = -4,          /**< unknown op */
    SAM_ERR_FLAGS = -5,       /**< an undefined flag bit (MORE in the flat form) */
    SAM_ERR_RESERVED = -6,    /**< reserved header bits not 0 */
    SAM_ERR_LENGTH = -7,      /**< a record's length field is not its payload, or a non-final record not full */
    SAM_ERR_TRAILING = -8,    /**< bytes after the declared length */
    SAM_ERR_TOO_BIG = -9,     /**< message over SAM_MSG_MAX, or a datagram over SAM_RECORD_MAX */
    SAM_ERR_TAG = -10,        /**< a tag the op does not list */
    SAM_ERR_ORDER = -11,      /**< tags not ascending */
    SAM_ERR_COUNT = -12,      /**< a field more often than its table allows */
    SAM_ERR_FIELD_LEN = -13,  /**< a value's length out of bounds (U32 not 4 bytes, U64 not 8) */
    SAM_ERR_VALUE = -14,      /**< an integer out of bounds */
    SAM_ERR_UTF8 = -15,       /**< TEXT not UTF-8, or with a NUL */
    SAM_ERR_MISSING = -16,    /**< a required field absent */
    SAM_ERR_ONE_OF = -17,     /**< not exactly one field of a one_of group */
    SAM_ERR_INTERLEAVED = -18,/**< a record of another request id (or op) inside a message */
    SAM_ERR_CLOSED = -19,     /**< the peer closed the connection */
    SAM_ERR_TIMEOUT = -20,    /**< the deadline passed */
    SAM_ERR_IO = -21,         /**< a socket call failed (errno kept) */
    SAM_ERR_NOMEM = -22,
    SAM_ERR_INVAL = -23,      /**< a bad argument: NULL, a buffer not in flat form, a builder already failed */
    SAM_ERR_ABSENT = -24,     /**< accessors: the field is not in the message (not a protocol error) */
    SAM_ERR_UNAVAILABLE = -25,/**< sam_client: the SAM is not there (no socket, refused, connection limit) */
    SAM_ERR_REFUSED = -26,    /**< sam_client's typed helpers: the SAM answered REFUSED */
};

/** A static English text for rc (also for unknown codes). */
const char *sam_strerror(int rc);
/** 1 if the n bytes at s are a TEXT value the decoder accepts (well-formed UTF-8 without NUL), else 0. */
int sam_text_ok(const char *s, size_t n);
/** "SIGN", "SIGN reply", "REFUSED", ...; NULL for an unknown op. */
const char *sam_op_name(unsigned op);
/** "NOT_BOUND", ...; NULL for an unknown code. */
const char *sam_refusal_name(uint32_t code);

/* ---- the tables ---------------------------------------------------------------------------------------------- */

typedef enum { SAM_TYPE_U32 = 1, SAM_TYPE_U64 = 2, SAM_TYPE_BYTES = 3, SAM_TYPE_TEXT = 4 } sam_type_t;

/** One row of an op's table. Rows are in ascending tag order. */
typedef struct sam_field_spec {
    uint16_t tag;
    uint8_t type;              /**< sam_type_t */
    uint8_t one_of;            /**< 0, or a group: exactly one row of the group is present */
    uint16_t min_count;        /**< 1 = required */
    uint16_t max_count;        /**< > 1: a repeated field */
    uint32_t min_len, max_len; /**< BYTES, TEXT: bytes of one value (U32: 4, U64: 8) */
    uint64_t min_val, max_val; /**< U32, U64: inclusive bounds of the value */
} sam_field_spec_t;

typedef struct sam_op_spec {
    uint8_t op;
    uint8_t provisional;       /**< 1: the schema may change before anything uses it */
    const char *name;
    const sam_field_spec_t *fields;
    size_t n_fields;
} sam_op_spec_t;

/** The table of op (a request op, op | SAM_OP_REPLY, or SAM_OP_REFUSED); NULL for an unknown op. */
const sam_op_spec_t *sam_op_spec(unsigned op);
/** The row of tag in spec, NULL if the op does not list it. */
const sam_field_spec_t *sam_field_spec(const sam_op_spec_t *spec, unsigned tag);

/* ---- decoding ------------------------------------------------------------------------------------------------ */

/** A decoded message: a view into the caller's buffer (which must stay unchanged while the view is used). */
typedef struct sam_msg {
    uint8_t op;
    uint32_t id;                       /**< request id */
    const uint8_t *body;
    size_t body_len;
    uint32_t first[SAM_TAG_LIMIT];     /**< per tag: offset in body of the first value's field header */
    uint16_t count[SAM_TAG_LIMIT];     /**< per tag: how many values (0: absent) */
} sam_msg_t;

/**
 * Decode a message in flat form (SAM_HDR_LEN header with flags 0 and length = len - SAM_HDR_LEN, then the body)
 * against its op's table, strictly: see THE DECODER above. Nothing is copied.
 * @param[in] buf, len the message (as built by sam_build_finish() or received by sam_recv())
 * @param[out] out the view; zeroed on error
 * @return SAM_OK, SAM_ERR_INVAL (NULL), or the SAM_ERR_* of the first rule broken (header before body, fields
 *         in order, required fields and one_of groups last)
 */
SAM_MUST_CHECK int sam_msg_decode(const uint8_t *buf, size_t len, sam_msg_t *out);

/** How many values tag has in m (0 for a tag out of range). */
unsigned sam_msg_count(const sam_msg_t *m, unsigned tag);
/** The first value of a U32 / U64 field. @return SAM_OK or SAM_ERR_ABSENT (also: not that type's length) */
int sam_get_u32(const sam_msg_t *m, unsigned tag, uint32_t *v);
int sam_get_u64(const sam_msg_t *m, unsigned tag, uint64_t *v);
/** The first value of a BYTES or TEXT field, pointing into the message (a TEXT is not NUL-terminated).
 *  @return SAM_OK or SAM_ERR_ABSENT */
int sam_get_bytes(const sam_msg_t *m, unsigned tag, const uint8_t **p, size_t *len);
/**
 * The first value of a TEXT field copied into out with a NUL (the decoder refused NULs inside).
 * @return SAM_OK, SAM_ERR_ABSENT, SAM_ERR_INVAL (out too small: out is then "")
 * @note The caller wipes out when it holds a secret.
 */
SAM_MUST_CHECK int sam_get_text(const sam_msg_t *m, unsigned tag, char *out, size_t outsz);

/** Walks the values of one tag, in order. */
typedef struct sam_iter {
    const uint8_t *next;
    unsigned left;
} sam_iter_t;
void sam_iter_init(const sam_msg_t *m, unsigned tag, sam_iter_t *it);
/** @return 1 and the next value, or 0 when there is none left */
int sam_iter_next(sam_iter_t *it, const uint8_t **p, size_t *len);

/* ---- building ------------------------------------------------------------------------------------------------ */

/**
 * A message being built, in flat form. It can only produce what sam_msg_decode() accepts: each put checks the
 * tag against the op's table (listed, not below the last tag, count, length, value, UTF-8) and the size
 * against SAM_MSG_MAX; sam_build_finish() checks the required fields and one_of groups. The first failure
 * sticks: later puts do nothing and sam_build_finish() returns it, so a caller may check only the finish.
 * Its memory is wiped when it grows and in sam_build_free().
 */
typedef struct sam_builder {
    uint8_t *buf;
    size_t len, cap;
    const sam_op_spec_t *spec;
    uint32_t id;
    unsigned last_tag;
    int err;                           /**< the first failure, SAM_OK so far */
    uint16_t count[SAM_TAG_LIMIT];
} sam_builder_t;

/** Start a message of op with request id. @return SAM_OK, SAM_ERR_OP (unknown op: later calls fail too), SAM_ERR_INVAL */
int sam_build_init(sam_builder_t *b, unsigned op, uint32_t id);
/** Append one value of tag. @return SAM_OK or the (sticky) error: SAM_ERR_TAG, SAM_ERR_ORDER, SAM_ERR_COUNT,
 *  SAM_ERR_FIELD_LEN, SAM_ERR_VALUE, SAM_ERR_UTF8, SAM_ERR_TOO_BIG, SAM_ERR_NOMEM, SAM_ERR_INVAL (wrong type
 *  for the tag, NULL) */
int sam_put_u32(sam_builder_t *b, unsigned tag, uint32_t v);
int sam_put_u64(sam_builder_t *b, unsigned tag, uint64_t v);
int sam_put_bytes(sam_builder_t *b, unsigned tag, const void *p, size_t len);
int sam_put_text(sam_builder_t *b, unsigned tag, const char *s, size_t len);
/** sam_put_text() of a NUL-terminated string. */
int sam_put_str(sam_builder_t *b, unsigned tag, const char *s);
/**
 * Finish: write the header. *msg, *len: the flat message, owned by b (valid until sam_build_free()).
 * @return SAM_OK, the sticky error, SAM_ERR_MISSING, SAM_ERR_ONE_OF
 */
SAM_MUST_CHECK int sam_build_finish(sam_builder_t *b, const uint8_t **msg, size_t *len);
/** Wipe and free; b may be reused with sam_build_init(). NULL is fine. */
void sam_build_free(sam_builder_t *b);

/**
 * Build the refusal of request id: code, reason (cut to SAM_REASON_MAX bytes at a character boundary), about
 * (a tag, 0 = none). b is initialised here; free it with sam_build_free().
 */
SAM_MUST_CHECK int sam_build_refusal(sam_builder_t *b, uint32_t id, uint32_t code, const char *reason,
                                     unsigned about);

/* ---- the socket ---------------------------------------------------------------------------------------------- */

/** Deadlines are CLOCK_MONOTONIC milliseconds; SAM_FOREVER waits without limit. */
#define SAM_FOREVER ((int64_t)-1)
/** Now on CLOCK_MONOTONIC, ms. A deadline in timeout_ms: sam_now_ms() + timeout_ms. */
int64_t sam_now_ms(void);

/**
 * Send one flat message (from sam_build_finish()) on a SOCK_SEQPACKET socket, cut into records. Never raises
 * SIGPIPE; retries on EINTR; while the socket is full waits (poll) until the deadline. Works on blocking and
 * non-blocking sockets alike.
 * @return SAM_OK, SAM_ERR_INVAL (not a valid flat header for its length), SAM_ERR_TIMEOUT, SAM_ERR_CLOSED
 *         (EPIPE, ECONNRESET), SAM_ERR_IO (errno kept)
 * @note On any error the peer may have part of the message: close the connection.
 */
SAM_MUST_CHECK int sam_send(int fd, const uint8_t *msg, size_t len, int64_t deadline_ms);

/** A receive buffer; zero-initialise it ({0}). It holds the last message received until the next sam_recv(). */
typedef struct sam_rbuf {
    uint8_t *buf;
    size_t len;                       /**< the flat message's length, 0 after an error */
    size_t cap;
} sam_rbuf_t;

/**
 * Receive one message: read records until one without SAM_FLAG_MORE, check each record's header (magic,
 * version, known op, flags, reserved bits, length = payload, a non-final record full, the same op and request
 * id as the first: else SAM_ERR_INTERLEAVED), keep the body within SAM_MSG_MAX, and leave it in flat form in
 * rb (decode it with sam_msg_decode()). Retries on EINTR; waits with poll until the deadline.
 * @return SAM_OK, SAM_ERR_CLOSED (end of file, also before the first record), SAM_ERR_TIMEOUT, SAM_ERR_TOO_BIG,
 *         SAM_ERR_TRUNCATED (a datagram shorter than a header), a header error, SAM_ERR_INTERLEAVED,
 *         SAM_ERR_NOMEM, SAM_ERR_IO
 * @note On any error close the connection: the rest of the message (or the next one) may still be queued.
 */
SAM_MUST_CHECK int sam_recv(int fd, sam_rbuf_t *rb, int64_t deadline_ms);
/** Wipe and free the buffer. */
void sam_rbuf_free(sam_rbuf_t *rb);

/** Who is at the other end of a Unix socket (SO_PEERCRED: as of connect() or socketpair()). */
typedef struct sam_peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
} sam_peer_t;
/** @return SAM_OK, SAM_ERR_IO (not a Unix socket, errno kept), SAM_ERR_INVAL */
SAM_MUST_CHECK int sam_peer(int fd, sam_peer_t *out);

#ifdef __cplusplus
}
#endif
#endif
