/* srv_priv.h - process hardening of csc-server and (issue 11) csc-sam: srv_priv.c, library csc_priv, the only code
 * that links libseccomp (and libcrypto, for csc-sam's allocator of OpenSSL's large blocks). Its own header, without
 * the service's: csc_priv is linked into csc-server, csc-server-test (beside the _t libraries) and the unit test
 * test_priv, none of which it must pull the service's libraries into. docs/architecture.md, "Process hardening". */
#ifndef SRV_PRIV_H
#define SRV_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* FRONT: csc-server; SAM: csc-sam; SENDER: csc-sam's exec: OTP sender helper and the program it runs (it inherits
 * the filter): processes and files, sockets only AF_UNIX, no network. */
typedef enum { SRV_PROFILE_FRONT = 1, SRV_PROFILE_SAM = 2, SRV_PROFILE_SENDER = 3 } srv_profile_t;

/* First, before any secret is read and any thread starts: no core dumps (RLIMIT_CORE 0, PR_SET_DUMPABLE 0),
 * PR_SET_NO_NEW_PRIVS (inherited by every thread started later), and one malloc arena per CPU (srv_priv_arenas(0):
 * what the process's heap holds grows with its arenas). 0, or -1 with a message on stderr. */
int srv_priv_early(void);

/* malloc's arenas: at most n (0: one per CPU, what srv_priv_early sets), unless GLIBC_TUNABLES names
 * glibc.malloc.arena_max (an operator's own count is kept). Before the process's second thread exists. csc-server
 * takes SRV_PRIV_FRONT_ARENAS after srv_priv_early: with one heap for all its threads its resident memory moved by ±0.6-4%
 * from minute to minute, where with two the free pages its heaps held between trims moved it by ±4-7% (bench/soak
 * at 25 rounds a second, 2 CPUs), and a signature cost no more CPU (bench/run; docs/reliability.md, "Session 23").
 * csc-sam keeps one per CPU: its threads sign and commit at once, and one arena cost it 18% of one-hash signatures
 * (session 19). */
#define SRV_PRIV_FRONT_ARENAS 1
void srv_priv_arenas(unsigned n);

/* glibc's cache of freed blocks per thread (tcache), limited to SRV_PRIV_TCACHE_BLOCKS blocks of each size
 * (glibc's default is 7): the caches of the seldom-busy threads (workers, csc-sam's connection threads) filled over
 * tens of minutes and kept their pages resident, a rise of the process's memory that a smaller cache does not have and
 * that costs a signature nothing measurable (docs/reliability.md, Soak). The size is a glibc tunable, read from
 * GLIBC_TUNABLES when the process starts (no mallopt sets it), so: first thing in main, if GLIBC_TUNABLES names no
 * glibc.malloc.tcache_count, it is added to the variable (after what an operator put there) and the process executes
 * itself again (srv_priv_exec_self); the processes it starts then inherit it. An operator's own
 * glibc.malloc.tcache_count is kept (7: glibc's default). Returns only if nothing was to be done, or, with a warning
 * on stderr naming who, if the exec failed (the process runs on with glibc's default). */
#define SRV_PRIV_TCACHE_BLOCKS "2"
void srv_priv_tcache(const char *who, char **argv);
/* Execute this process's program again with argv and the current environment: the file /proc/self/exe names, so
 * that the process keeps its name (comm); the same pid and descriptors. Returns only on failure, with errno set. */
void srv_priv_exec_self(char **argv);
/* srv_priv_tcache's value: cur (GLIBC_TUNABLES, or NULL) with glibc.malloc.tcache_count added, into out. 1 written,
 * 0 cur already names it (out untouched), -1 out too small. */
int srv_priv_tcache_value(const char *cur, char *out, size_t n);

/* Switch to user (initgroups, setgid, setuid) when running as root, after the files that need root are open.
 * Refused (-1, message naming who and user): an unknown user, root itself, a process not running as root unless
 * it already is that user, and a switch after which setuid(0) still succeeds. "" or NULL: nothing to do. */
int srv_priv_drop(const char *who, const char *user);

/* The uid and primary gid of user (getpwnam_r). -1 with a message naming who and user if there is no such user. */
int srv_priv_user(const char *who, const char *user, uid_t *uid, gid_t *gid);

/* Lock all memory, now and future, each page as it is first touched (MCL_ONFAULT) (the SAM: the PIN and sessions
 * never reach swap). As root RLIMIT_MEMLOCK is
 * raised first (it survives the switch of user). -1 with a clear message if the kernel refuses. */
int srv_priv_mlock(const char *who);

/* csc-sam, after srv_priv_mlock and before its threads start: fault in (and so lock) bytes of malloc's heaps once,
 * half in the main arena and the rest shared by the other arenas M_ARENA_MAX allows (each made by a short-lived
 * thread of its own), then free them. The heaps keep those pages (srv_priv_mlock sets no trimming), so the requests
 * run in pages already locked, and the process's locked memory stays what start-up made it until its heaps need more
 * than that: csc-sam's locked heaps otherwise kept every page their busiest moment first touched, which rose in
 * steps at each new peak of concurrency (docs/reliability.md, Soak). 0 bytes: nothing. 0, or -1 (no memory or no
 * thread: nothing is held). */
int srv_priv_heap_reserve(size_t bytes);
/* malloc's view of the process's heaps (mallinfo2, every arena): bytes of blocks in use (mapped ones included), and
 * bytes the heaps hold (their extent and the mapped blocks): what a slow leak raises, and what the reserve and
 * fragmentation add. */
void srv_priv_heap_usage(uint64_t *in_use, uint64_t *held);

/* csc-sam, first thing in main (before OpenSSL allocates anything): OpenSSL's blocks of SRV_PRIV_MAPPED_MIN bytes or
 * more each get a mapping of their own, wiped and unmapped when freed, instead of a place in malloc's heaps, which
 * csc-sam locks and never trims (srv_priv_mlock): scrypt's working memory (128 * r * N bytes: 1 MiB at
 * scrypt_log2n 10, 32 MiB at the default 15) is written whole by each password or PIN check, so every such block
 * that fragmentation put at a new place in a heap stayed resident for good. Smaller blocks go to malloc as
 * before, with nothing added to them; a block is known as one of these by its address alone (at most
 * SRV_PRIV_MAPPED_MAX at once; beyond, malloc). 0, or -1 if OpenSSL allocated before (its functions cannot be
 * changed then). */
#define SRV_PRIV_MAPPED_MIN (1024 * 1024)
#define SRV_PRIV_MAPPED_MAX 64
int srv_priv_openssl_mapped(void);
/* How many blocks srv_priv_openssl_mapped's functions hold in their own mappings now (for its test). */
unsigned srv_priv_mapped_live(void);

/* Load the profile's system-call allow-list into every thread of the process; anything else fails with EPERM
 * and is logged by the kernel. Sets NO_NEW_PRIVS. Irreversible. */
int srv_priv_seccomp(srv_profile_t profile);

/* What new sockets csc-sam may open after the filter: its PKCS#11 module's (configuration pkcs11_sockets): none (a
 * local module such as SoftHSM), unix (connect to a Unix socket: p11-kit-client.so), inet (also TCP/UDP over
 * IPv4/IPv6: a network HSM's client); the module connects again whenever it is initialised again (hsm/ recovery).
 * With storage = postgresql inet, for the database connections libpq opens whenever the pool needs one. */
typedef enum { SRV_P11NET_NONE = 0, SRV_P11NET_UNIX = 1, SRV_P11NET_INET = 2 } srv_p11net_t;
srv_p11net_t srv_priv_p11net(const char *pkcs11_sockets);

/* The SAM's filter with what p11net allows its module on top (srv_priv_sam loads it). */
int srv_priv_seccomp_sam(srv_p11net_t p11net);

/* csc-sam tells systemd how it is (srv_notify.c, sd_notify: a new AF_UNIX datagram socket per message): on, the
 * SAM's filter allows creating that one kind of socket. Before srv_priv_sam. The front end's filter allows Unix
 * sockets anyway. */
void srv_priv_notify(int on);

/* csc-server after start-up, before serving, from its configuration: srv_priv_drop(server_user), then the
 * front end's filter unless seccomp is 0 (said on stderr). Whatever otp_sender is: an exec: sender runs from
 * csc-sam's sender helper, never from csc-server. */
int srv_priv_front(const char *server_user, unsigned seccomp);

/* csc-sam once its token, database and socket are open, before it accepts: srv_priv_drop(sam_user), then the SAM's
 * filter (with p11net's sockets for the module) unless seccomp is 0 (said on stderr). memory_locked: srv_priv_mlock succeeded; if RLIMIT_MEMLOCK could not
 * be raised for it, the switch of user keeps CAP_IPC_LOCK and no other capability (said on stderr). */
int srv_priv_sam(const char *sam_user, unsigned seccomp, int memory_locked, srv_p11net_t p11net);

#endif
