/* fuzz_proto.c: libFuzzer harness for boson-init's protocol parser (proto.c), built by `make fuzz`.
 *
 * The input is what the host could write on the control port: a stream of frames. Each 8-byte header is decoded
 * as the guest does (frame_hdr_decode; a length over FRAME_MAX ends the stream, as it ends the guest's session);
 * a SPEC payload goes to spec_parse, an EXEC payload to exec_spec_parse, and any other payload, as text, to the
 * NET_IF and MOUNT record parsers. A parsed spec is checked against what proto.h promises, then freed (ASan's
 * leak check covers every error path). Run with the fixed seed corpus in fuzz/corpus (see fuzz.test.ts). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto.h"

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "fuzz_proto: invariant failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                             \
		}                                                                            \
	} while (0)

static void check_vec(char **vec, size_t n)
{
	CHECK(n == 0 || vec != NULL);
	if (vec) {
		for (size_t i = 0; i < n; i++)
			CHECK(vec[i] != NULL);
		CHECK(vec[n] == NULL);
	}
}

static void check_spec(const struct spec *s, int is_exec)
{
	CHECK(s->argc > 0);
	check_vec(s->argv, s->argc);
	CHECK(s->envp != NULL);
	check_vec(s->envp, s->envc);
	check_vec(s->dns, s->ndns);
	check_vec(s->dns_search, s->ndns_search);
	check_vec(s->hosts, s->nhosts);
	CHECK(s->cwd && s->cwd[0] == '/');
	CHECK(s->user && s->hostname && s->root_fstype);
	if (!is_exec)
		CHECK(s->root_disk && s->root_disk[0]);
	for (size_t i = 0; i < s->nifs; i++) {
		CHECK(strlen(s->ifs[i].mac) == 17);
		CHECK(s->ifs[i].prefix >= 0 && s->ifs[i].prefix <= 32);
		CHECK(s->ifs[i].mtu >= 68 && s->ifs[i].mtu <= 65535);
	}
	for (size_t i = 0; i < s->nmounts; i++) {
		const struct mount_spec *m = &s->mounts[i];
		CHECK(m->source && m->target && m->fstype && m->target[0] == '/');
		CHECK(m->kind >= MOUNT_DISK && m->kind <= MOUNT_VIRTIOFS);
		CHECK(strstr(m->target, "/../") == NULL);
	}
}

static void parse_payload(uint8_t type, const uint8_t *p, size_t n)
{
	char err[256];
	struct spec s;
	if (type == T_SPEC || type == T_EXEC) {
		int is_exec = type == T_EXEC;
		int rc = is_exec ? exec_spec_parse(p, n, &s, err, sizeof err) : spec_parse(p, n, &s, err, sizeof err);
		if (rc == 0) {
			check_spec(&s, is_exec);
			spec_free(&s);
		} else {
			CHECK(memchr(err, 0, sizeof err) != NULL);
			CHECK(s.argv == NULL && s.envp == NULL && s.mounts == NULL && s.ifs == NULL);
		}
		return;
	}
	char *text = malloc(n + 1);
	if (!text)
		return;
	memcpy(text, p, n);
	text[n] = 0;
	struct net_if ifc;
	if (net_if_parse(text, &ifc, err, sizeof err) == 0)
		CHECK(ifc.prefix >= 0 && ifc.prefix <= 32);
	struct mount_spec m;
	if (mount_spec_parse(text, &m, err, sizeof err) == 0) {
		CHECK(m.target && m.target[0] == '/');
		mount_spec_free(&m);
	} else {
		CHECK(m.source == NULL && m.target == NULL && m.fstype == NULL);
	}
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (size - off >= FRAME_HDR) {
		struct frame_hdr h;
		if (frame_hdr_decode(data + off, &h) < 0) {
			CHECK(h.len > FRAME_MAX);
			break;
		}
		uint8_t again[FRAME_HDR];
		frame_hdr_encode(again, h.type, h.session, h.len);
		CHECK(again[0] == data[off] && memcmp(again + 2, data + off + 2, 6) == 0);
		off += FRAME_HDR;
		size_t n = h.len <= size - off ? h.len : size - off; /* a short last frame: what arrived */
		parse_payload(h.type, data + off, n);
		off += n;
	}
	return 0;
}
