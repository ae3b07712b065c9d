/* proto.c: frame header and SPEC codec, exit status mapping (see proto.h). */
#define _POSIX_C_SOURCE 200809L
#include "proto.h"

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

int spec_parse(const uint8_t *p, size_t n, struct spec *s, char *err, size_t errlen)
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
		switch (tag) {
		case S_ARG:
		case S_ENV: {
			char *str = dup_value(v, len);
			if (!str)
				return spec_error(s, err, errlen, "record with tag %u holds a NUL byte", tag);
			int rc = tag == S_ARG ? vec_push(&s->argv, &s->argc, str) : vec_push(&s->envp, &s->envc, str);
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
		case S_TTY:
		case S_STDIN:
			if (len != 1)
				return spec_error(s, err, errlen, "record with tag %u must be 1 byte, not %u", tag, len);
			*(tag == S_TTY ? &s->tty : &s->stdin_open) = v[0] != 0;
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
	if (!s->root_disk || !*s->root_disk)
		return spec_error(s, err, errlen, "missing ROOT_DISK");
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
	memset(s, 0, sizeof *s);
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
