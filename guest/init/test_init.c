/* test_init.c: host-side unit tests of boson-init's pure parts (frame and SPEC codec, user lookup, exit status).
 * Prints one line per failed check and a summary; exits non-zero on any failure. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"
#include "settings.h"
#include "user.h"

static int failures, checks;

#define CHECK(cond)                                                                                    \
	do {                                                                                           \
		checks++;                                                                              \
		if (!(cond)) {                                                                         \
			failures++;                                                                    \
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                         \
		}                                                                                      \
	} while (0)

/* A growable byte buffer for building SPEC payloads. */
struct bytes {
	uint8_t data[8192];
	size_t len;
};

/* Appends one SPEC record. */
static void rec(struct bytes *b, uint8_t tag, const void *v, uint32_t len)
{
	b->data[b->len] = tag;
	put_u32(b->data + b->len + 1, len);
	memcpy(b->data + b->len + 5, v, len);
	b->len += 5 + len;
}

/* Appends a string record. */
static void rec_str(struct bytes *b, uint8_t tag, const char *s)
{
	rec(b, tag, s, (uint32_t)strlen(s));
}

static void test_frame_header(void)
{
	uint8_t h[8];
	frame_hdr_encode(h, T_EXIT, 0x0102, 0x00030405);
	const uint8_t want[8] = {0x05, 0, 0x01, 0x02, 0x00, 0x03, 0x04, 0x05};
	CHECK(memcmp(h, want, 8) == 0);
	struct frame_hdr d;
	CHECK(frame_hdr_decode(h, &d) == 0);
	CHECK(d.type == T_EXIT && d.session == 0x0102 && d.len == 0x00030405);

	frame_hdr_encode(h, T_STDIN, 0, FRAME_MAX);
	CHECK(frame_hdr_decode(h, &d) == 0 && d.len == FRAME_MAX);
	frame_hdr_encode(h, T_STDIN, 0, FRAME_MAX + 1);
	CHECK(frame_hdr_decode(h, &d) == -1);

	const uint8_t rsv[8] = {0x82, 0xff, 0, 0, 0, 0, 0, 7}; /* reserved byte is ignored */
	CHECK(frame_hdr_decode(rsv, &d) == 0 && d.type == T_STDIN && d.session == 0 && d.len == 7);

	uint8_t b[8];
	put_u64(b, 0x0102030405060708ull);
	CHECK(b[0] == 1 && b[7] == 8 && get_u32(b + 4) == 0x05060708 && get_u16(b + 2) == 0x0304);
}

static void test_spec_good(void)
{
	struct bytes b = {.len = 0};
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_ENV, "PATH=/bin");
	rec_str(&b, S_ARG, "-c");
	rec_str(&b, S_ARG, "echo hi");
	rec_str(&b, S_ENV, "A=b c");
	rec_str(&b, S_CWD, "/work/dir");
	rec_str(&b, S_USER, "app:staff");
	rec_str(&b, S_HOSTNAME, "box");
	rec(&b, S_TTY, "\1", 1);
	rec(&b, S_STDIN, "\1", 1);
	rec(&b, S_WINSIZE, "\0\x32\0\xc8", 4);
	rec_str(&b, S_ROOT_DISK, "boson-root");
	rec_str(&b, S_ROOT_FSTYPE, "ext4");
	rec_str(&b, S_SCRATCH_DISK, "boson-scratch");
	struct spec s;
	char err[256] = "";
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == 0);
	CHECK(s.argc == 3 && strcmp(s.argv[0], "sh") == 0 && strcmp(s.argv[2], "echo hi") == 0 && !s.argv[3]);
	CHECK(s.envc == 2 && strcmp(s.envp[1], "A=b c") == 0 && !s.envp[2]);
	CHECK(strcmp(s.cwd, "/work/dir") == 0 && strcmp(s.user, "app:staff") == 0);
	CHECK(strcmp(s.hostname, "box") == 0 && s.tty == 1 && s.stdin_open == 1);
	CHECK(s.rows == 50 && s.cols == 200);
	CHECK(strcmp(s.root_disk, "boson-root") == 0 && strcmp(s.root_fstype, "ext4") == 0);
	CHECK(s.scratch_disk && strcmp(s.scratch_disk, "boson-scratch") == 0);
	spec_free(&s);
}

static void test_spec_defaults_and_unknown(void)
{
	struct bytes b = {.len = 0};
	rec(&b, 200, "future", 6); /* unknown tags are skipped */
	rec_str(&b, S_ARG, "true");
	rec(&b, 99, "", 0);
	rec_str(&b, S_ROOT_DISK, "r");
	struct spec s;
	char err[256] = "";
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == 0);
	CHECK(s.argc == 1 && strcmp(s.argv[0], "true") == 0);
	CHECK(s.envc == 0 && s.envp && s.envp[0] == NULL);
	CHECK(strcmp(s.cwd, "/") == 0 && strcmp(s.user, "0:0") == 0 && strcmp(s.hostname, "boson") == 0);
	CHECK(strcmp(s.root_fstype, "erofs") == 0 && s.scratch_disk == NULL);
	CHECK(s.tty == 0 && s.stdin_open == 0 && s.rows == 24 && s.cols == 80);
	spec_free(&s);
}

static void test_spec_bad(void)
{
	struct spec s;
	char err[256];
	struct bytes b = {.len = 0};

	rec_str(&b, S_ROOT_DISK, "r"); /* no ARG */
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "ARG"));
	CHECK(s.argv == NULL && s.root_disk == NULL); /* freed and zeroed */

	b.len = 0;
	rec_str(&b, S_ARG, "x"); /* no ROOT_DISK */
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "ROOT_DISK"));

	b.len = 0;
	rec_str(&b, S_ARG, "x");
	rec_str(&b, S_ROOT_DISK, "r");
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == 0);
	spec_free(&s);
	for (size_t cut = 1; cut < b.len; cut++) { /* every truncation is rejected */
		if (cut == 6) /* "ARG x" alone is a complete record, rejected for missing ROOT_DISK */
			continue;
		CHECK(spec_parse(b.data, cut, &s, err, sizeof err) == -1);
	}
	CHECK(spec_parse(b.data, b.len - 1, &s, err, sizeof err) == -1 && strstr(err, "truncated"));
	CHECK(spec_parse(b.data, 3, &s, err, sizeof err) == -1 && strstr(err, "truncated"));

	b.len = 0;
	rec(&b, S_ARG, "a\0b", 3); /* NUL inside a string */
	rec_str(&b, S_ROOT_DISK, "r");
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == -1);

	b.len = 0;
	rec_str(&b, S_ARG, "x");
	rec_str(&b, S_ROOT_DISK, "r");
	rec(&b, S_TTY, "\1\1", 2); /* wrong size */
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == -1);

	b.len = 0;
	rec_str(&b, S_ARG, "x");
	rec_str(&b, S_ROOT_DISK, "r");
	rec_str(&b, S_CWD, "relative");
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == -1);

	CHECK(spec_parse(b.data, 0, &s, err, sizeof err) == -1); /* empty payload */
}

static void test_spec_v2(void)
{
	struct bytes b = {.len = 0};
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_ROOT_DISK, "boson-root");
	const uint8_t clock[8] = {0x17, 0x9e, 0x5e, 0x0a, 0x12, 0x34, 0x56, 0x78};
	rec(&b, S_CLOCK, clock, 8);
	rec_str(&b, S_NET_IF, "52:54:00:12:34:56 10.88.0.5/16 10.88.0.1 1500");
	rec_str(&b, S_NET_IF, "52:54:00:AB:CD:EF 192.168.7.2/24 - 9000");
	rec_str(&b, S_DNS, "10.88.0.1");
	rec_str(&b, S_DNS, "1.1.1.1");
	rec_str(&b, S_DNS_SEARCH, "example.com");
	rec_str(&b, S_HOSTS, "10.88.0.5\tweb");
	rec_str(&b, S_MOUNT, "disk\tvol-data\t/data\text4\trw");
	rec_str(&b, S_MOUNT, "9p\tshare0\t/srv/share\t9p\tro");
	rec_str(&b, S_MOUNT, "virtiofs\tboson-bind2\t/host\tvirtiofs\trw");
	rec(&b, S_LOG_PORT, "\1", 1);
	rec(&b, S_EPHEMERAL, "\1", 1);
	struct spec s;
	char err[256] = "";
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == 0);
	CHECK(s.has_clock && s.clock_ns == 0x179e5e0a12345678ull);
	CHECK(s.nifs == 2);
	CHECK(strcmp(s.ifs[0].mac, "52:54:00:12:34:56") == 0 && s.ifs[0].prefix == 16 && s.ifs[0].mtu == 1500);
	CHECK(s.ifs[0].addr == inet_addr("10.88.0.5") && s.ifs[0].has_gateway && s.ifs[0].gateway == inet_addr("10.88.0.1"));
	CHECK(strcmp(s.ifs[1].mac, "52:54:00:ab:cd:ef") == 0 && !s.ifs[1].has_gateway && s.ifs[1].mtu == 9000);
	CHECK(s.ndns == 2 && strcmp(s.dns[1], "1.1.1.1") == 0 && s.dns[2] == NULL);
	CHECK(s.ndns_search == 1 && strcmp(s.dns_search[0], "example.com") == 0);
	CHECK(s.nhosts == 1 && strcmp(s.hosts[0], "10.88.0.5\tweb") == 0);
	CHECK(s.nmounts == 3);
	CHECK(s.mounts[2].kind == MOUNT_VIRTIOFS && strcmp(s.mounts[2].source, "boson-bind2") == 0 && !s.mounts[2].read_only);
	CHECK(s.mounts[0].kind == MOUNT_DISK && strcmp(s.mounts[0].source, "vol-data") == 0);
	CHECK(strcmp(s.mounts[0].target, "/data") == 0 && strcmp(s.mounts[0].fstype, "ext4") == 0 && !s.mounts[0].read_only);
	CHECK(s.mounts[1].kind == MOUNT_9P && strcmp(s.mounts[1].source, "share0") == 0 && s.mounts[1].read_only);
	CHECK(s.log_port == 1 && s.ephemeral == 1);
	spec_free(&s);

	/* without the version 2 records: nothing set */
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_ROOT_DISK, "r");
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == 0);
	CHECK(!s.has_clock && s.nifs == 0 && s.ndns == 0 && s.dns == NULL && s.nmounts == 0 && !s.log_port && !s.ephemeral);
	spec_free(&s);

	/* a bad NET_IF or MOUNT record makes the whole SPEC invalid, with the reason */
	const char *bad[][2] = {
		{"\x0d", "52:54:00:12:34:56 10.88.0.5/16 10.88.0.1"},          /* 3 fields */
		{"\x0d", "52:54:00:12:34:56 10.88.0.5/16 10.88.0.1 1500 x"},   /* 5 fields */
		{"\x0d", "52:54:00:12:34 10.88.0.5/16 - 1500"},                /* short MAC */
		{"\x0d", "52-54-00-12-34-56 10.88.0.5/16 - 1500"},             /* separators */
		{"\x0d", "52:54:00:12:34:5g 10.88.0.5/16 - 1500"},             /* not hex */
		{"\x0d", "52:54:00:12:34:56 10.88.0.5 - 1500"},                /* no prefix */
		{"\x0d", "52:54:00:12:34:56 10.88.0.5/33 - 1500"},             /* prefix too big */
		{"\x0d", "52:54:00:12:34:56 10.88.0.5/ - 1500"},               /* empty prefix */
		{"\x0d", "52:54:00:12:34:56 10.88.0.300/24 - 1500"},           /* bad address */
		{"\x0d", "52:54:00:12:34:56 10.88.0.5/24 gw 1500"},            /* bad gateway */
		{"\x0d", "52:54:00:12:34:56 10.88.0.5/24 - 67"},               /* MTU too small */
		{"\x0d", "52:54:00:12:34:56 10.88.0.5/24 - 65536"},            /* MTU too big */
		{"\x0d", "52:54:00:12:34:56 10.88.0.5/24 - 15x0"},             /* MTU not a number */
		{"\x0d", "52:54:00:12:34:56  10.88.0.5/24 - 1500"},            /* double space */
		{"\x0d", ""},
		{"\x11", "disk\tvol\t/data\text4"},                            /* 4 fields */
		{"\x11", "disk\tvol\t/data\text4\trw\tx"},                     /* 6 fields */
		{"\x11", "nfs\tvol\t/data\tnfs\trw"},                          /* kind */
		{"\x11", "disk\t\t/data\text4\trw"},                            /* empty source */
		{"\x11", "disk\tvol\tdata\text4\trw"},                          /* relative target */
		{"\x11", "disk\tvol\t/a/../etc\text4\trw"},                     /* .. in target */
		{"\x11", "disk\tvol\t/..\text4\trw"},
		{"\x11", "disk\tvol\t/data\t\trw"},                             /* empty fstype */
		{"\x11", "disk\tvol\t/data\text4\trw,noexec"},                  /* options */
		{"\x11", "disk vol /data ext4 rw"},                              /* spaces, not tabs */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		b.len = 0;
		rec_str(&b, S_ARG, "sh");
		rec_str(&b, S_ROOT_DISK, "r");
		rec_str(&b, S_MOUNT, "disk\tok\t/ok\text4\tro"); /* a good record before the bad one is freed too */
		rec_str(&b, (uint8_t)bad[i][0][0], bad[i][1]);
		err[0] = 0;
		int rc = spec_parse(b.data, b.len, &s, err, sizeof err);
		CHECK(rc == -1);
		CHECK(strstr(err, bad[i][0][0] == S_NET_IF ? "NET_IF" : "MOUNT") != NULL);
		if (rc == -1)
			CHECK(s.mounts == NULL && s.nmounts == 0);
		else
			spec_free(&s);
	}
	struct mount_spec m;
	CHECK(mount_spec_parse("disk\tvol\t/a..b/..c\text4\tro", &m, err, sizeof err) == 0); /* only ".." itself */
	CHECK(strcmp(m.target, "/a..b/..c") == 0 && m.read_only);
	mount_spec_free(&m);
	struct net_if nif;
	CHECK(net_if_parse("aa:BB:cc:DD:ee:FF 0.0.0.0/0 - 68", &nif, err, sizeof err) == 0);
	CHECK(strcmp(nif.mac, "aa:bb:cc:dd:ee:ff") == 0 && nif.prefix == 0 && nif.mtu == 68);

	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_ROOT_DISK, "r");
	rec(&b, S_CLOCK, clock, 4); /* wrong size */
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "CLOCK"));
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_ROOT_DISK, "r");
	rec(&b, S_LOG_PORT, "\1\0", 2);
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == -1);
	/* ENTROPY: 16 to 64 bytes, kept as given */
	uint8_t seed[65];
	for (size_t i = 0; i < sizeof seed; i++)
		seed[i] = (uint8_t)(i * 7 + 1);
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_ROOT_DISK, "r");
	rec(&b, S_ENTROPY, seed, 32);
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == 0);
	CHECK(s.entropy_len == 32 && memcmp(s.entropy, seed, 32) == 0);
	spec_free(&s);
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_ROOT_DISK, "r");
	rec(&b, S_ENTROPY, seed, 65); /* too long */
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "ENTROPY"));
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_ROOT_DISK, "r");
	rec(&b, S_ENTROPY, seed, 8); /* too short */
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "ENTROPY"));
}

static void test_exec_spec(void)
{
	struct bytes b = {.len = 0};
	rec_str(&b, S_ARG, "ls");
	rec_str(&b, S_ARG, "-l");
	rec_str(&b, S_ENV, "A=1");
	rec_str(&b, S_USER, "app");
	rec(&b, S_TTY, "\1", 1);
	rec_str(&b, S_MOUNT, "garbage"); /* container records are ignored in an EXEC */
	rec_str(&b, S_NET_IF, "garbage");
	struct spec s;
	char err[256] = "";
	CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == 0); /* no ROOT_DISK needed */
	CHECK(s.argc == 2 && s.envc == 1 && strcmp(s.user, "app") == 0 && s.tty && strcmp(s.cwd, "/") == 0);
	CHECK(s.nmounts == 0 && s.nifs == 0 && s.root_disk == NULL);
	spec_free(&s);
	b.len = 0;
	rec_str(&b, S_ENV, "A=1");
	CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "ARG"));
	CHECK(spec_parse(b.data, 0, &s, err, sizeof err) == -1);
	/* A pod container's root: EXEC_ROOT and EXEC_READONLY, in an EXEC only. */
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_EXEC_ROOT, "/.boson/pod/c1/rootfs");
	rec(&b, S_EXEC_READONLY, "\1", 1);
	CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == 0);
	CHECK(s.exec_root && strcmp(s.exec_root, "/.boson/pod/c1/rootfs") == 0 && s.exec_readonly);
	spec_free(&s);
	rec_str(&b, S_ROOT_DISK, "boson-root");
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == 0 && s.exec_root == NULL && !s.exec_readonly); /* not a SPEC's */
	spec_free(&s);
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_EXEC_ROOT, "/a/../../etc");
	CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "EXEC_ROOT"));
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_EXEC_MOUNT, "/.boson/pod/c1/mounts/0\t/data\tro");
	rec_str(&b, S_EXEC_MOUNT, "/.boson/pod/c1/mounts/1\t/dev/termination-log\trw");
	CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == 0 && s.nexec_mounts == 2);
	{
		char text[128], *target;
		int ro = 0;
		snprintf(text, sizeof text, "%s", s.exec_mounts[0]);
		CHECK(exec_mount_parse(text, &target, &ro, err, sizeof err) == 0 && strcmp(text, "/.boson/pod/c1/mounts/0") == 0 &&
		      strcmp(target, "/data") == 0 && ro);
	}
	spec_free(&s);
	const char *bad_mounts[] = {"/a\t/b", "/a\t/b\tmaybe", "/a\trel\tro", "/a\t/../b\trw", "/a\t/b\tro\tx"};
	for (size_t i = 0; i < sizeof bad_mounts / sizeof bad_mounts[0]; i++) {
		b.len = 0;
		rec_str(&b, S_ARG, "sh");
		rec_str(&b, S_EXEC_MOUNT, bad_mounts[i]);
		CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "EXEC_MOUNT"));
	}
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_EXEC_ROOT, "relative");
	CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "EXEC_ROOT"));
	/* A pod container's cgroup and supplementary groups: EXEC only. */
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_EXEC_CGROUP, "boson/c1");
	rec_str(&b, S_EXEC_GROUPS, "10,4294967294,0");
	CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == 0);
	CHECK(s.exec_cgroup && strcmp(s.exec_cgroup, "boson/c1") == 0 && s.nexec_groups == 3 && s.exec_groups[0] == 10 &&
	      s.exec_groups[1] == 4294967294u && s.exec_groups[2] == 0);
	spec_free(&s);
	rec_str(&b, S_ROOT_DISK, "boson-root");
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == 0 && s.exec_cgroup == NULL && s.nexec_groups == 0);
	spec_free(&s);
	const char *bad_cgroups[] = {"/abs", "a/../b", "..", "a//b", "a/", "a b", ""};
	for (size_t i = 0; i < sizeof bad_cgroups / sizeof bad_cgroups[0]; i++) {
		b.len = 0;
		rec_str(&b, S_ARG, "sh");
		rec_str(&b, S_EXEC_CGROUP, bad_cgroups[i]);
		CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "EXEC_CGROUP"));
	}
	const char *bad_groups[] = {"", "1,,2", "x", "1,-2", "4294967295", "1 2"};
	for (size_t i = 0; i < sizeof bad_groups / sizeof bad_groups[0]; i++) {
		b.len = 0;
		rec_str(&b, S_ARG, "sh");
		rec_str(&b, S_EXEC_GROUPS, bad_groups[i]);
		CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "EXEC_GROUPS"));
	}
	/* Capabilities and no_new_privs: EXEC only. */
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec(&b, S_EXEC_CAPS, "\0\0\0\0\xa8\x04\x25\xfb", 8);
	rec(&b, S_EXEC_NO_NEW_PRIVS, "\1", 1);
	CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == 0 && s.has_exec_caps && s.exec_caps == 0xa80425fbu &&
	      s.exec_no_new_privs);
	spec_free(&s);
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec(&b, S_EXEC_CAPS, "\1\2\3", 3);
	CHECK(exec_spec_parse(b.data, b.len, &s, err, sizeof err) == -1 && strstr(err, "EXEC_CAPS"));
	/* DNS options: a SPEC's, repeatable. */
	b.len = 0;
	rec_str(&b, S_ARG, "sh");
	rec_str(&b, S_ROOT_DISK, "boson-root");
	rec_str(&b, S_DNS_OPTION, "ndots:5");
	rec_str(&b, S_DNS_OPTION, "edns0");
	CHECK(spec_parse(b.data, b.len, &s, err, sizeof err) == 0 && s.ndns_options == 2 && strcmp(s.dns_options[1], "edns0") == 0);
	spec_free(&s);
}

/* Writes text to a new temporary file and returns its path (static storage per slot). */
static const char *temp_file(int slot, const char *text)
{
	static char paths[2][64];
	snprintf(paths[slot], sizeof paths[slot], "/tmp/boson-init-test-XXXXXX");
	int fd = mkstemp(paths[slot]);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror("temp file");
		exit(2);
	}
	close(fd);
	return paths[slot];
}

/* True if ids holds exactly the given supplementary groups (in any order). */
static int has_groups(const struct user_ids *ids, size_t n, const uint32_t *want)
{
	if (ids->ngroups != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		size_t j;
		for (j = 0; j < ids->ngroups && ids->groups[j] != want[i]; j++)
			;
		if (j == ids->ngroups)
			return 0;
	}
	return 1;
}

static void test_users(void)
{
	const char *pw = temp_file(0, "root:x:0:0:root:/root:/bin/sh\n"
				      "# comment\n"
				      "broken line\n"
				      "daemon:x:1:1::/:/sbin/nologin\n"
				      "app:x:1000:1001:App:/home/app:/bin/sh\n"
				      "nogrp:x:1002:1002::/:/bin/sh");  /* no final newline */
	const char *gr = temp_file(1, "root:x:0:root\n"
				      "wheel:x:10:root,app\n"
				      "staff:x:50:\n"
				      "appgrp:x:1001:\n"
				      "audio:x:29:bob, app\n"
				      "video:x:44:bob\n");
	struct user_ids ids;
	char err[256];

	CHECK(user_resolve("app", pw, gr, &ids, err, sizeof err) == 0);
	CHECK(ids.uid == 1000 && ids.gid == 1001);
	const uint32_t app_groups[] = {10, 29};
	CHECK(has_groups(&ids, 2, app_groups));

	CHECK(user_resolve("app:staff", pw, gr, &ids, err, sizeof err) == 0);
	CHECK(ids.uid == 1000 && ids.gid == 50 && has_groups(&ids, 2, app_groups));

	CHECK(user_resolve("1000:44", pw, gr, &ids, err, sizeof err) == 0); /* numeric with entry */
	CHECK(ids.uid == 1000 && ids.gid == 44 && has_groups(&ids, 2, app_groups));

	CHECK(user_resolve("1000", pw, gr, &ids, err, sizeof err) == 0);
	CHECK(ids.uid == 1000 && ids.gid == 1001);

	CHECK(user_resolve("4242", pw, gr, &ids, err, sizeof err) == 0); /* numeric uid without entry */
	CHECK(ids.uid == 4242 && ids.gid == 0 && ids.ngroups == 0);
	CHECK(user_resolve("4242:77", pw, gr, &ids, err, sizeof err) == 0);
	CHECK(ids.uid == 4242 && ids.gid == 77 && ids.ngroups == 0);
	CHECK(user_resolve("4242:staff", pw, gr, &ids, err, sizeof err) == 0);
	CHECK(ids.uid == 4242 && ids.gid == 50);

	CHECK(user_resolve("nogrp", pw, gr, &ids, err, sizeof err) == 0); /* last line without newline */
	CHECK(ids.uid == 1002 && ids.gid == 1002 && ids.ngroups == 0);

	CHECK(user_resolve(NULL, pw, gr, &ids, err, sizeof err) == 0); /* default: root */
	const uint32_t root_groups[] = {0, 10};
	CHECK(ids.uid == 0 && ids.gid == 0 && has_groups(&ids, 2, root_groups));
	CHECK(user_resolve("0:0", pw, gr, &ids, err, sizeof err) == 0 && ids.uid == 0 && ids.gid == 0);

	CHECK(user_resolve("nobody", pw, gr, &ids, err, sizeof err) == -1 && strstr(err, "nobody"));
	CHECK(user_resolve("app:nogroup", pw, gr, &ids, err, sizeof err) == -1 && strstr(err, "nogroup"));
	CHECK(user_resolve("4294967296", pw, gr, &ids, err, sizeof err) == -1); /* too big: a name, unknown */

	/* Missing files: numbers still work, names do not. */
	CHECK(user_resolve("5:6", "/nonexistent/passwd", "/nonexistent/group", &ids, err, sizeof err) == 0);
	CHECK(ids.uid == 5 && ids.gid == 6 && ids.ngroups == 0);
	CHECK(user_resolve("root", "/nonexistent/passwd", "/nonexistent/group", &ids, err, sizeof err) == -1);

	unlink(pw);
	unlink(gr);
}

/* Runs a child that ends as told and returns its wait status. */
static int child_status(int code, int sig)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (sig) {
			signal(sig, SIG_DFL);
			raise(sig);
		}
		_exit(code);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	return st;
}

static void test_exit_status(void)
{
	uint32_t sig = 99;
	CHECK(exit_status(child_status(0, 0), &sig) == 0 && sig == 0);
	CHECK(exit_status(child_status(3, 0), &sig) == 3 && sig == 0);
	CHECK(exit_status(child_status(255, 0), &sig) == 255 && sig == 0);
	CHECK(exit_status(child_status(0, SIGKILL), &sig) == 137 && sig == 9);
	CHECK(exit_status(child_status(0, SIGINT), &sig) == 130 && sig == 2);
	CHECK(exit_status(child_status(0, SIGTERM), &sig) == 143 && sig == 15);
}

/* Reads a whole small file into buf ("" if missing). */
static void slurp(const char *path, char *buf, size_t len)
{
	buf[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = 0;
	fclose(f);
}

static void test_settings(void)
{
	char root[] = "/tmp/boson-settings-XXXXXX";
	CHECK(mkdtemp(root) != NULL);
	char p[512], list[512], got[64];
	snprintf(p, sizeof p, "%s/sys", root);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/sys/knob", root);
	fclose(fopen(p, "w"));
	snprintf(p, sizeof p, "%s/etc", root);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/etc/passwd", root);
	fclose(fopen(p, "w"));
	snprintf(list, sizeof list, "%s/settings", root);
	FILE *f = fopen(list, "w");
	fprintf(f, "# a comment\n\n/sys/knob 3\n/etc/passwd x\n/sys/../etc/passwd y\n/sys/missing 1\n/sys/novalue\n");
	fclose(f);
	CHECK(apply_settings(list, root) == 4); /* /etc, "..", a missing file, no value */
	snprintf(p, sizeof p, "%s/sys/knob", root);
	slurp(p, got, sizeof got);
	CHECK(strcmp(got, "3") == 0);
	snprintf(p, sizeof p, "%s/etc/passwd", root);
	slurp(p, got, sizeof got);
	CHECK(strcmp(got, "") == 0); /* outside /sys and /proc/sys: untouched */
	CHECK(apply_settings("/nonexistent/settings", root) == 0);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", root);
	CHECK(system(cmd) == 0);
}

int main(void)
{
	test_frame_header();
	test_spec_good();
	test_spec_defaults_and_unknown();
	test_spec_bad();
	test_spec_v2();
	test_exec_spec();
	test_users();
	test_exit_status();
	test_settings();
	printf("boson-init unit tests: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
