/* user.c: passwd/group file lookup (see user.h). */
#define _POSIX_C_SOURCE 200809L
#include "user.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One parsed line of passwd ("name:pw:uid:gid:...") or group ("name:pw:gid:members"). */
struct entry {
	char *name;
	uint32_t id;
	uint32_t gid;     /* passwd only */
	char *members;    /* group only: comma-separated, may be empty */
};

/* Parses a decimal id (all digits, fits in 32 bits, not (uint32_t)-1). Returns 0 on success, -1 otherwise. */
static int parse_id(const char *s, uint32_t *out)
{
	if (!*s)
		return -1;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v >= UINT32_MAX)
			return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* Splits line (modified in place) at ':' into at most max fields; returns the number found. */
static int split_fields(char *line, char **fields, int max)
{
	int n = 0;
	line[strcspn(line, "\r\n")] = 0;
	while (n < max) {
		fields[n++] = line;
		char *c = strchr(line, ':');
		if (!c)
			break;
		*c = 0;
		line = c + 1;
	}
	return n;
}

/* Iterates over the file: calls match(entry, ctx) on each well-formed line until it returns non-zero.
 * passwd selects the passwd layout (else group). Returns the match's value, or 0. */
static int scan_file(const char *path, int passwd, int (*match)(const struct entry *, void *), void *ctx)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;
	while (!rc && getline(&line, &cap, f) >= 0) {
		char *fld[7];
		int n = split_fields(line, fld, 7);
		struct entry e = {.name = fld[0], .members = ""};
		if (!*e.name || e.name[0] == '#' || e.name[0] == '+' || e.name[0] == '-')
			continue;
		if (passwd) {
			if (n < 4 || parse_id(fld[2], &e.id) < 0 || parse_id(fld[3], &e.gid) < 0)
				continue;
		} else {
			if (n < 3 || parse_id(fld[2], &e.id) < 0)
				continue;
			if (n >= 4)
				e.members = fld[3];
		}
		rc = match(&e, ctx);
	}
	free(line);
	fclose(f);
	return rc;
}

/* Search context: find by name (name != NULL) or by id; result copied out. */
struct query {
	const char *name;
	uint32_t id;
	uint32_t found_id, found_gid;
	char found_name[256];
};

/* Matches an entry by name or id and records it. */
static int match_entry(const struct entry *e, void *ctx)
{
	struct query *q = ctx;
	if (q->name ? strcmp(e->name, q->name) != 0 : e->id != q->id)
		return 0;
	q->found_id = e->id;
	q->found_gid = e->gid;
	snprintf(q->found_name, sizeof q->found_name, "%s", e->name);
	return 1;
}

/* Adds the gid of every group listing ctx's user name as a member to ctx's user_ids. */
struct member_ctx {
	const char *user;
	struct user_ids *ids;
};

static int match_member(const struct entry *e, void *ctx)
{
	struct member_ctx *m = ctx;
	char *list = strdup(e->members);
	if (!list)
		return 0;
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		tok += strspn(tok, " ");
		tok[strcspn(tok, " ")] = 0;
		if (strcmp(tok, m->user) != 0)
			continue;
		size_t i;
		for (i = 0; i < m->ids->ngroups && m->ids->groups[i] != e->id; i++)
			;
		if (i == m->ids->ngroups && m->ids->ngroups < USER_MAX_GROUPS)
			m->ids->groups[m->ids->ngroups++] = e->id;
		break;
	}
	free(list);
	return 0;
}

int user_resolve(const char *spec, const char *passwd_path, const char *group_path, struct user_ids *out,
		 char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	char buf[512];
	snprintf(buf, sizeof buf, "%s", spec && *spec ? spec : "0");
	char *group = strchr(buf, ':');
	if (group)
		*group++ = 0;
	const char *user = *buf ? buf : "0";

	struct query q = {0};
	int found;
	if (parse_id(user, &q.id) == 0) {
		out->uid = q.id;
		found = scan_file(passwd_path, 1, match_entry, &q);
		out->gid = found ? q.found_gid : 0;
	} else {
		q.name = user;
		if (!scan_file(passwd_path, 1, match_entry, &q)) {
			snprintf(err, errlen, "unable to find user %s: no matching entries in passwd file", user);
			return -1;
		}
		found = 1;
		out->uid = q.found_id;
		out->gid = q.found_gid;
	}
	char name[256];
	snprintf(name, sizeof name, "%s", found ? q.found_name : "");

	if (group && *group) {
		struct query g = {0};
		if (parse_id(group, &g.id) == 0) {
			out->gid = g.id;
		} else {
			g.name = group;
			if (!scan_file(group_path, 0, match_entry, &g)) {
				snprintf(err, errlen, "unable to find group %s: no matching entries in group file", group);
				return -1;
			}
			out->gid = g.found_id;
		}
	}
	if (*name) {
		struct member_ctx m = {.user = name, .ids = out};
		scan_file(group_path, 0, match_member, &m);
	}
	return 0;
}
