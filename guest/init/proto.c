/* proto.c: frame header and SPEC codec, exit status mapping (see proto.h). */
#define _POSIX_C_SOURCE 200809L
#include "proto.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)(v >> 32));
	put_u32(p + 4, (uint32_t)v);
}

uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t get_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint64_t get_u64(const uint8_t *p)
{
	return ((uint64_t)get_u32(p) << 32) | get_u32(p + 4);
}

void frame_hdr_encode(uint8_t *out, uint8_t type, uint16_t session, uint32_t len)
{
	out[0] = type;
	out[1] = 0;
	put_u16(out + 2, session);
	put_u32(out + 4, len);
}

int frame_hdr_decode(const uint8_t *in, struct frame_hdr *h)
{
	h->type = in[0];
	h->session = get_u16(in + 2);
	h->len = get_u32(in + 4);
	return h->len > FRAME_MAX ? -1 : 0;
}

/* Copies a record value into a new C string; NULL if it holds a NUL byte or memory runs out. */
/* True when p is a relative path of plain names ([A-Za-z0-9_.-], not "." or ".."), such as "boson/abc". */
static int cgroup_path_ok(const char *p)
{
	if (!*p || strlen(p) > 255)
		return 0;
	for (const char *c = p; *c;) {
		const char *end = strchr(c, '/');
		size_t n = end ? (size_t)(end - c) : strlen(c);
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)c[i]) && c[i] != '_' && c[i] != '.' && c[i] != '-')
				return 0;
		c += n;
		if (*c == '/')
			c++;
	}
	return p[strlen(p) - 1] != '/';
}

static char *dup_value(const uint8_t *v, uint32_t len)
{
	if (memchr(v, 0, len))
		return NULL;
	char *s = malloc((size_t)len + 1);
	if (!s)
		return NULL;
	memcpy(s, v, len);
	s[len] = 0;
	return s;
}

/* Appends str to a NULL-terminated vector; returns -1 when out of memory. */
static int vec_push(char ***vec, size_t *n, char *str)
{
	char **nv = realloc(*vec, (*n + 2) * sizeof **vec);
	if (!nv)
		return -1;
	nv[(*n)++] = str;
	nv[*n] = NULL;
	*vec = nv;
	return 0;
}

/* Formats a parse error into err and returns -1. */
static int spec_error(struct spec *s, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	spec_free(s);
	return -1;
}

/* Formats a message into err and returns -1 (for the record parsers, which own nothing). */
static int rec_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Parses a decimal number in [lo, hi] that spans the whole of str. Returns 0, or -1. */
static int parse_int(const char *str, long lo, long hi, long *out)
{
	if (!*str || strlen(str) > 10)
		return -1;
	long v = 0;
	for (const char *c = str; *c; c++) {
		if (*c < '0' || *c > '9')
			return -1;
		v = v * 10 + (*c - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int net_if_parse(const char *text, struct net_if *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	char buf[128];
	if (strlen(text) >= sizeof buf)
		return rec_error(err, errlen, "NET_IF \"%.40s...\" is too long", text);
	strcpy(buf, text);
	char *field[4];
	size_t nf = 0;
	for (char *p = buf;;) {
		char *sp = strchr(p, ' ');
		if (nf == 4)
			return rec_error(err, errlen, "NET_IF \"%s\" has more than 4 fields", text);
		field[nf++] = p;
		if (!sp)
			break;
		*sp = 0;
		p = sp + 1;
	}
	if (nf != 4)
		return rec_error(err, errlen, "NET_IF \"%s\" must be \"MAC ADDRESS/PREFIX GATEWAY MTU\"", text);
	const char *mac = field[0];
	if (strlen(mac) != 17)
		return rec_error(err, errlen, "NET_IF MAC \"%s\" is not aa:bb:cc:dd:ee:ff", mac);
	for (int i = 0; i < 17; i++) {
		int ok = i % 3 == 2 ? mac[i] == ':' : isxdigit((unsigned char)mac[i]);
		if (!ok)
			return rec_error(err, errlen, "NET_IF MAC \"%s\" is not aa:bb:cc:dd:ee:ff", mac);
		out->mac[i] = (char)tolower((unsigned char)mac[i]);
	}
	char *slash = strchr(field[1], '/');
	long prefix;
	if (!slash || parse_int(slash + 1, 0, 32, &prefix) < 0)
		return rec_error(err, errlen, "NET_IF address \"%s\" is not ADDRESS/PREFIX (prefix 0..32)", field[1]);
	*slash = 0;
	struct in_addr a;
	if (inet_pton(AF_INET, field[1], &a) != 1)
		return rec_error(err, errlen, "NET_IF address \"%s\" is not an IPv4 address", field[1]);
	out->addr = a.s_addr;
	out->prefix = (int)prefix;
	if (strcmp(field[2], "-") != 0) {
		if (inet_pton(AF_INET, field[2], &a) != 1)
			return rec_error(err, errlen, "NET_IF gateway \"%s\" is neither - nor an IPv4 address", field[2]);
		out->gateway = a.s_addr;
		out->has_gateway = 1;
	}
	long mtu;
	if (parse_int(field[3], 68, 65535, &mtu) < 0)
		return rec_error(err, errlen, "NET_IF MTU \"%s\" is not a number in 68..65535", field[3]);
	out->mtu = (int)mtu;
	return 0;
}

void mount_spec_free(struct mount_spec *m)
{
	free(m->source);
	free(m->target);
	free(m->fstype);
	memset(m, 0, sizeof *m);
}

int mount_spec_parse(const char *text, struct mount_spec *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	const char *field[5];
	size_t flen[5], nf = 0;
	for (const char *p = text;;) {
		const char *tab = strchr(p, '\t');
		if (nf == 5)
			return rec_error(err, errlen, "MOUNT \"%s\" has more than 5 fields", text);
		field[nf] = p;
		flen[nf++] = tab ? (size_t)(tab - p) : strlen(p);
		if (!tab)
			break;
		p = tab + 1;
	}
	if (nf != 5)
		return rec_error(err, errlen, "MOUNT \"%s\" must be KIND, SOURCE, TARGET, FSTYPE, OPTIONS separated by tabs",
				 text);
	for (size_t i = 0; i < 5; i++)
		if (flen[i] == 0)
			return rec_error(err, errlen, "MOUNT \"%s\" has an empty field", text);
	if (flen[0] == 4 && memcmp(field[0], "disk", 4) == 0)
		out->kind = MOUNT_DISK;
	else if (flen[0] == 2 && memcmp(field[0], "9p", 2) == 0)
		out->kind = MOUNT_9P;
	else if (flen[0] == 8 && memcmp(field[0], "virtiofs", 8) == 0)
		out->kind = MOUNT_VIRTIOFS;
	else
		return rec_error(err, errlen, "MOUNT kind \"%.*s\" is not disk, 9p or virtiofs", (int)flen[0], field[0]);
	if (flen[4] == 2 && memcmp(field[4], "ro", 2) == 0)
		out->read_only = 1;
	else if (!(flen[4] == 2 && memcmp(field[4], "rw", 2) == 0))
		return rec_error(err, errlen, "MOUNT options \"%.*s\" are neither rw nor ro", (int)flen[4], field[4]);
	const char *t = field[2];
	size_t tl = flen[2];
	if (t[0] != '/')
		return rec_error(err, errlen, "MOUNT target \"%.*s\" is not absolute", (int)tl, t);
	for (size_t i = 0; i < tl;) { /* no ".." component */
		size_t j = i;
		while (j < tl && t[j] != '/')
			j++;
		if (j - i == 2 && t[i] == '.' && t[i + 1] == '.')
			return rec_error(err, errlen, "MOUNT target \"%.*s\" contains ..", (int)tl, t);
		i = j + 1;
	}
	out->source = strndup(field[1], flen[1]);
	out->target = strndup(field[2], flen[2]);
	out->fstype = strndup(field[3], flen[3]);
	if (!out->source || !out->target || !out->fstype) {
		mount_spec_free(out);
		return rec_error(err, errlen, "out of memory");
	}
	return 0;
}

/* Appends one element to a heap array of elements of size sz; returns a pointer to it (zeroed), or NULL. */
static void *array_push(void **arr, size_t *n, size_t sz)
{
	uint8_t *na = realloc(*arr, (*n + 1) * sz);
	if (!na)
		return NULL;
	*arr = na;
	memset(na + *n * sz, 0, sz);
	return na + (*n)++ * sz;
}

static int parse_records(const uint8_t *p, size_t n, struct spec *s, char *err, size_t errlen, int is_exec);

int spec_parse(const uint8_t *p, size_t n, struct spec *s, char *err, size_t errlen)
{
	return parse_records(p, n, s, err, errlen, 0);
}

int exec_spec_parse(const uint8_t *p, size_t n, struct spec *s, char *err, size_t errlen)
{
	return parse_records(p, n, s, err, errlen, 1);
}

static int parse_records(const uint8_t *p, size_t n, struct spec *s, char *err, size_t errlen, int is_exec)
{
	memset(s, 0, sizeof *s);
	s->rows = 24;
	s->cols = 80;
	size_t off = 0;
	while (off < n) {
		if (n - off < 5)
			return spec_error(s, err, errlen, "truncated record header at offset %zu", off);
		uint8_t tag = p[off];
		uint32_t len = get_u32(p + off + 1);
		off += 5;
		if (len > n - off)
			return spec_error(s, err, errlen, "record with tag %u truncated (%u bytes announced, %zu left)",
					  tag, len, n - off);
		const uint8_t *v = p + off;
		off += len;

		char **slot = NULL;
		int exec_only = tag == S_EXEC_ROOT || tag == S_EXEC_READONLY || tag == S_EXEC_MOUNT || tag == S_EXEC_CGROUP ||
				tag == S_EXEC_GROUPS || tag == S_EXEC_CAPS || tag == S_EXEC_NO_NEW_PRIVS;
		if (is_exec ? tag > S_WINSIZE && !exec_only : exec_only)
			continue; /* an EXEC takes only the process's records, and EXEC_ROOT is an EXEC's only */
		switch (tag) {
		case S_ARG:
		case S_ENV:
		case S_DNS:
		case S_DNS_SEARCH:
		case S_DNS_OPTION:
		case S_HOSTS: {
			char *str = dup_value(v, len);
			if (!str)
				return spec_error(s, err, errlen, "record with tag %u holds a NUL byte", tag);
			int rc = tag == S_ARG	       ? vec_push(&s->argv, &s->argc, str)
				 : tag == S_ENV	       ? vec_push(&s->envp, &s->envc, str)
				 : tag == S_DNS	       ? vec_push(&s->dns, &s->ndns, str)
				 : tag == S_DNS_SEARCH ? vec_push(&s->dns_search, &s->ndns_search, str)
				 : tag == S_DNS_OPTION ? vec_push(&s->dns_options, &s->ndns_options, str)
						       : vec_push(&s->hosts, &s->nhosts, str);
			if (rc < 0) {
				free(str);
				return spec_error(s, err, errlen, "out of memory");
			}
			continue;
		}
		case S_CWD: slot = &s->cwd; break;
		case S_USER: slot = &s->user; break;
		case S_HOSTNAME: slot = &s->hostname; break;
		case S_ROOT_DISK: slot = &s->root_disk; break;
		case S_ROOT_FSTYPE: slot = &s->root_fstype; break;
		case S_SCRATCH_DISK: slot = &s->scratch_disk; break;
		case S_EXEC_ROOT: slot = &s->exec_root; break;
		case S_EXEC_CGROUP: slot = &s->exec_cgroup; break;
		case S_EXEC_GROUPS: {
			char text[32 * 11 + 1];
			if (len == 0 || len >= sizeof text)
				return spec_error(s, err, errlen, "EXEC_GROUPS must be 1 to %zu bytes, not %u", sizeof text - 1, len);
			memcpy(text, v, len);
			text[len] = 0;
			s->nexec_groups = 0;
			for (char *tok = text, *next; tok; tok = next) {
				next = strchr(tok, ',');
				if (next)
					*next++ = 0;
				char *end;
				errno = 0;
				unsigned long g = strtoul(tok, &end, 10);
				if (!*tok || *end || errno || g > 4294967294UL || s->nexec_groups == sizeof s->exec_groups / sizeof s->exec_groups[0])
					return spec_error(s, err, errlen, "EXEC_GROUPS: \"%s\" is not a list of at most 32 group ids", tok);
				s->exec_groups[s->nexec_groups++] = (uint32_t)g;
			}
			continue;
		}
		case S_CLOCK:
			if (len != 8)
				return spec_error(s, err, errlen, "CLOCK must be 8 bytes, not %u", len);
			s->has_clock = 1;
			s->clock_ns = get_u64(v);
			continue;
		case S_EXEC_MOUNT: {
			char *str = dup_value(v, len);
			if (!str)
				return spec_error(s, err, errlen, "record with tag %u holds a NUL byte", tag);
			char copy[PATH_MAX * 2 + 8], msg[256], *target;
			int ro;
			int too_long = strlen(str) >= sizeof copy;
			snprintf(copy, sizeof copy, "%s", str);
			if (too_long || exec_mount_parse(copy, &target, &ro, msg, sizeof msg) < 0) {
				free(str);
				return spec_error(s, err, errlen, "EXEC_MOUNT: %s", too_long ? "too long" : msg);
			}
			if (vec_push(&s->exec_mounts, &s->nexec_mounts, str) < 0) {
				free(str);
				return spec_error(s, err, errlen, "out of memory");
			}
			continue;
		}
		case S_NET_IF:
		case S_MOUNT: {
			char *str = dup_value(v, len);
			if (!str)
				return spec_error(s, err, errlen, "record with tag %u holds a NUL byte", tag);
			char msg[256];
			int rc;
			if (tag == S_NET_IF) {
				struct net_if *ifc = array_push((void **)&s->ifs, &s->nifs, sizeof *ifc);
				rc = ifc ? net_if_parse(str, ifc, msg, sizeof msg) : rec_error(msg, sizeof msg, "out of memory");
			} else {
				struct mount_spec *m = array_push((void **)&s->mounts, &s->nmounts, sizeof *m);
				rc = m ? mount_spec_parse(str, m, msg, sizeof msg) : rec_error(msg, sizeof msg, "out of memory");
			}
			free(str);
			if (rc < 0)
				return spec_error(s, err, errlen, "%s", msg);
			continue;
		}
		case S_TTY:
		case S_STDIN:
		case S_LOG_PORT:
		case S_EPHEMERAL:
		case S_EXEC_READONLY:
		case S_EXEC_NO_NEW_PRIVS:
			if (len != 1)
				return spec_error(s, err, errlen, "record with tag %u must be 1 byte, not %u", tag, len);
			*(tag == S_TTY		? &s->tty
			  : tag == S_STDIN	? &s->stdin_open
			  : tag == S_LOG_PORT	? &s->log_port
			  : tag == S_EPHEMERAL	? &s->ephemeral
			  : tag == S_EXEC_READONLY ? &s->exec_readonly
						: &s->exec_no_new_privs) = v[0] != 0;
			continue;
		case S_EXEC_CAPS:
			if (len != 8)
				return spec_error(s, err, errlen, "EXEC_CAPS must be 8 bytes, not %u", len);
			s->has_exec_caps = 1;
			s->exec_caps = get_u64(v);
			continue;
		case S_ENTROPY:
			if (len < 16 || len > sizeof s->entropy)
				return spec_error(s, err, errlen, "ENTROPY must be 16 to %zu bytes, not %u", sizeof s->entropy, len);
			memcpy(s->entropy, v, len);
			s->entropy_len = len;
			continue;
		case S_WINSIZE:
			if (len != 4)
				return spec_error(s, err, errlen, "WINSIZE must be 4 bytes, not %u", len);
			s->rows = get_u16(v);
			s->cols = get_u16(v + 2);
			continue;
		default:
			continue; /* unknown tags are ignored */
		}
		char *str = dup_value(v, len);
		if (!str)
			return spec_error(s, err, errlen, "record with tag %u holds a NUL byte", tag);
		free(*slot);
		*slot = str;
	}
	if (s->argc == 0)
		return spec_error(s, err, errlen, "missing ARG: no command given");
	if (!is_exec && (!s->root_disk || !*s->root_disk))
		return spec_error(s, err, errlen, "missing ROOT_DISK");
	if (s->exec_root && (s->exec_root[0] != '/' || strstr(s->exec_root, "..")))
		return spec_error(s, err, errlen, "EXEC_ROOT \"%s\" is not absolute or contains ..", s->exec_root);
	if (s->exec_cgroup && !cgroup_path_ok(s->exec_cgroup))
		return spec_error(s, err, errlen, "EXEC_CGROUP \"%s\" is not a relative path of plain names", s->exec_cgroup);
	if (s->cwd && s->cwd[0] != '/')
		return spec_error(s, err, errlen, "CWD \"%s\" is not absolute", s->cwd);
	if (!s->envp && !(s->envp = calloc(1, sizeof *s->envp)))
		return spec_error(s, err, errlen, "out of memory");
	const char *defaults[] = {"/", "0:0", "boson", "erofs"};
	char **slots[] = {&s->cwd, &s->user, &s->hostname, &s->root_fstype};
	for (size_t i = 0; i < 4; i++) {
		if (!*slots[i] && !(*slots[i] = strdup(defaults[i])))
			return spec_error(s, err, errlen, "out of memory");
	}
	return 0;
}

/* Frees a NULL-terminated vector of n strings. */
static void vec_free(char **vec, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(vec[i]);
	free(vec);
}

void spec_free(struct spec *s)
{
	vec_free(s->argv, s->argc);
	vec_free(s->envp, s->envc);
	free(s->cwd);
	free(s->user);
	free(s->hostname);
	free(s->root_disk);
	free(s->root_fstype);
	free(s->scratch_disk);
	free(s->exec_root);
	free(s->exec_cgroup);
	vec_free(s->dns_options, s->ndns_options);
	vec_free(s->exec_mounts, s->nexec_mounts);
	free(s->ifs);
	vec_free(s->dns, s->ndns);
	vec_free(s->dns_search, s->ndns_search);
	vec_free(s->hosts, s->nhosts);
	for (size_t i = 0; i < s->nmounts; i++)
		mount_spec_free(&s->mounts[i]);
	free(s->mounts);
	memset(s, 0, sizeof *s);
}

int exec_mount_parse(char *text, char **target, int *readonly, char *err, size_t errlen)
{
	char *t1 = strchr(text, '\t');
	char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
	if (!t1 || !t2 || strchr(t2 + 1, '\t'))
		return rec_error(err, errlen, "expected SOURCE\\tTARGET\\tro|rw");
	*t1 = 0;
	*t2 = 0;
	*target = t1 + 1;
	const char *opt = t2 + 1;
	if (strcmp(opt, "ro") != 0 && strcmp(opt, "rw") != 0)
		return rec_error(err, errlen, "options \"%s\" are not ro or rw", opt);
	*readonly = strcmp(opt, "ro") == 0;
	const char *paths[] = {text, *target};
	for (int i = 0; i < 2; i++)
		if (paths[i][0] != '/' || strstr(paths[i], ".."))
			return rec_error(err, errlen, "\"%s\" is not absolute or contains ..", paths[i]);
	return 0;
}

int exit_status(int wstatus, uint32_t *signo)
{
	if (WIFSIGNALED(wstatus)) {
		*signo = (uint32_t)WTERMSIG(wstatus);
		return 128 + WTERMSIG(wstatus);
	}
	*signo = 0;
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 125;
}
