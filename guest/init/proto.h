/* proto.h: the boson-init wire protocol (docs/guest-protocol.md): frame headers, SPEC records, exit status.
 * Pure functions over bytes, no I/O, so they can be unit-tested on the host. */
#ifndef BOSON_PROTO_H
#define BOSON_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 2
#define FRAME_HDR 8
#define FRAME_MAX (1u << 20) /* largest payload of one frame */

/* Frame types: 0x01..0x7f guest→host, 0x81..0xff host→guest. */
enum frame_type {
	T_HELLO = 0x01,
	T_STARTED = 0x02,
	T_STDOUT = 0x03,
	T_STDERR = 0x04,
	T_EXIT = 0x05,
	T_ERROR = 0x06,
	T_LOG = 0x07,
	T_SYNCED = 0x08,
	T_SPEC = 0x81,
	T_STDIN = 0x82,
	T_STDIN_EOF = 0x83,
	T_SIGNAL = 0x84,
	T_RESIZE = 0x85,
	T_EXEC = 0x86,
	T_CLOCK = 0x87,
	T_SYNC = 0x88,
};

/* ERROR reasons. */
enum error_reason {
	R_SPEC_INVALID = 1,
	R_MOUNT_FAILED = 2,
	R_USER_UNKNOWN = 3,
	R_CWD_FAILED = 4,
	R_NOT_FOUND = 5,
	R_NOT_EXECUTABLE = 6,
	R_INTERNAL = 7,
	R_SESSION_IN_USE = 8, /* an EXEC named a session that a live exec holds (one started for an earlier host) */
};

/* SPEC record tags. */
enum spec_tag {
	S_ARG = 1,
	S_ENV = 2,
	S_CWD = 3,
	S_USER = 4,
	S_HOSTNAME = 5,
	S_TTY = 6,
	S_STDIN = 7,
	S_WINSIZE = 8,
	S_ROOT_DISK = 9,
	S_ROOT_FSTYPE = 10,
	S_SCRATCH_DISK = 11,
	S_CLOCK = 12,
	S_NET_IF = 13,
	S_DNS = 14,
	S_DNS_SEARCH = 15,
	S_HOSTS = 16,
	S_MOUNT = 17,
	S_LOG_PORT = 18,
	S_EXEC_ROOT = 19, /* EXEC only: the process's root directory, a path in the container's root (a pod's container) */
	S_EXEC_READONLY = 20, /* EXEC only, u8: with EXEC_ROOT, that root is mounted read-only for the process */
	S_EXEC_MOUNT = 21,    /* EXEC only, repeatable: "SOURCE\tTARGET\tro|rw", a bind into the EXEC_ROOT */
	S_ENTROPY = 22, /* 16..64 random bytes from the host: mixed into the guest's pool, which is reseeded */
	S_DNS_OPTION = 41, /* repeatable: a resolver option for /etc/resolv.conf's options line ("ndots:5") */
	S_EXEC_CGROUP = 42, /* EXEC only, with EXEC_ROOT: a cgroup path under /sys/fs/cgroup the process joins (made if missing) */
	S_EXEC_GROUPS = 43, /* EXEC only, with EXEC_ROOT: "GID,GID,..." supplementary groups added to the user's */
	S_EXEC_CAPS = 44,   /* EXEC only, with EXEC_ROOT, u64: the capability bounding set (bit N: capability N) */
	S_EXEC_NO_NEW_PRIVS = 45, /* EXEC only, with EXEC_ROOT, u8: no_new_privs is set before the exec */
	S_EPHEMERAL = 46, /* u8: the writable layer goes with the container (--rm): no final sync when it has no volumes */
};

struct frame_hdr {
	uint8_t type;
	uint16_t session;
	uint32_t len;
};

/* One NET_IF record: "MAC ADDRESS/PREFIX GATEWAY MTU". Addresses are in network byte order. */
struct net_if {
	char mac[18];      /* lower case, "aa:bb:cc:dd:ee:ff" as in /sys/class/net/X/address */
	uint32_t addr;
	int prefix;        /* 0..32 */
	uint32_t gateway;
	int has_gateway;   /* 0 when GATEWAY was "-" */
	int mtu;           /* 68..65535 */
};

enum mount_kind { MOUNT_DISK = 1, MOUNT_9P = 2, MOUNT_VIRTIOFS = 3 };

/* One MOUNT record: "KIND\tSOURCE\tTARGET\tFSTYPE\tOPTIONS". */
struct mount_spec {
	int kind;          /* enum mount_kind */
	char *source;      /* virtio-blk serial or 9p mount tag */
	char *target;      /* absolute path inside the container */
	char *fstype;
	int read_only;
};

/* A parsed SPEC. Every string is NUL-terminated and heap-allocated; argv and envp end with NULL.
 * Absent fields hold the defaults of the protocol document (scratch_disk stays NULL: tmpfs). */
struct spec {
	char **argv;
	size_t argc;
	char **envp;
	size_t envc;
	char *cwd;
	char *user;
	char *hostname;
	int tty;
	int stdin_open;
	uint16_t rows, cols;
	char *root_disk;
	char *root_fstype;
	char *scratch_disk;
	int has_clock;
	uint64_t clock_ns;
	struct net_if *ifs;
	size_t nifs;
	char **dns;           /* NULL-terminated (or NULL when none), like the lists below */
	size_t ndns;
	char **dns_search;
	size_t ndns_search;
	char **dns_options;
	size_t ndns_options;
	char **hosts;
	size_t nhosts;
	struct mount_spec *mounts;
	size_t nmounts;
	int log_port;
	int ephemeral; /* EPHEMERAL */
	char *exec_root; /* EXEC_ROOT, or NULL: the process runs in its own mount namespace, chrooted there */
	int exec_readonly; /* EXEC_READONLY: exec_root is read-only for it */
	char **exec_mounts; /* EXEC_MOUNT texts, checked by exec_mount_parse (NULL-terminated, or NULL) */
	size_t nexec_mounts;
	char *exec_cgroup; /* EXEC_CGROUP, or NULL: checked to be a relative path of plain names */
	uint32_t exec_groups[32]; /* EXEC_GROUPS */
	size_t nexec_groups;
	int has_exec_caps;
	uint64_t exec_caps; /* EXEC_CAPS */
	int exec_no_new_privs;
	uint8_t entropy[64];
	size_t entropy_len;
};

/* Big-endian stores and loads. */
void put_u16(uint8_t *p, uint16_t v);
void put_u32(uint8_t *p, uint32_t v);
void put_u64(uint8_t *p, uint64_t v);
uint16_t get_u16(const uint8_t *p);
uint32_t get_u32(const uint8_t *p);
uint64_t get_u64(const uint8_t *p);

/* Writes the 8-byte header of a frame to out. */
void frame_hdr_encode(uint8_t *out, uint8_t type, uint16_t session, uint32_t len);

/* Reads an 8-byte header. Returns 0, or -1 if the length exceeds FRAME_MAX (a protocol error). */
int frame_hdr_decode(const uint8_t *in, struct frame_hdr *h);

/* Parses a SPEC payload into s. Returns 0; or -1 with a message in err (s is then freed and zeroed).
 * Unknown tags are skipped. Requires at least one ARG and a ROOT_DISK. */
int spec_parse(const uint8_t *p, size_t n, struct spec *s, char *err, size_t errlen);

/* Parses an EXEC payload (ARG, ENV, CWD, USER, TTY, STDIN, WINSIZE, EXEC_ROOT; other tags are ignored) like spec_parse,
 * but without requiring a ROOT_DISK. */
int exec_spec_parse(const uint8_t *p, size_t n, struct spec *s, char *err, size_t errlen);

/* Parses the text of a NET_IF record. Returns 0, or -1 with a message in err. */
int net_if_parse(const char *text, struct net_if *out, char *err, size_t errlen);

/* Parses the text of a MOUNT record into out (heap strings, freed by mount_spec_free). Returns 0, or -1 with a
 * message in err (out is then zeroed). */
int mount_spec_parse(const char *text, struct mount_spec *out, char *err, size_t errlen);

/* Splits an EXEC_MOUNT text in place: `text` becomes the source, *target and *readonly are set. Both paths must be
 * absolute without "..". Returns 0, or -1 with a message in err. */
int exec_mount_parse(char *text, char **target, int *readonly, char *err, size_t errlen);

/* Frees what mount_spec_parse allocated. */
void mount_spec_free(struct mount_spec *m);

/* Frees everything spec_parse allocated and zeroes s. */
void spec_free(struct spec *s);

/* Maps a waitpid status to Docker's status (code, or 128+N for signal N) and stores N (or 0) in *signo. */
int exit_status(int wstatus, uint32_t *signo);

#endif
