/* user.h: resolve "user[:group]" against an image's passwd and group files (no NSS, no libc getpw*). */
#ifndef BOSON_USER_H
#define BOSON_USER_H

#include <stddef.h>
#include <stdint.h>

#define USER_MAX_GROUPS 64

struct user_ids {
	uint32_t uid;
	uint32_t gid;
	uint32_t groups[USER_MAX_GROUPS]; /* supplementary groups */
	size_t ngroups;
};

/* Resolves spec ("user[:group]", each a number or a name; NULL or "" means 0:0) using the files at passwd_path
 * and group_path (a missing file counts as empty). A numeric uid without a passwd entry gets gid 0 unless a
 * group is given. Supplementary groups are the groups listing the user's name as a member.
 * Returns 0, or -1 with a message in err when a name is unknown or a number is invalid. */
int user_resolve(const char *spec, const char *passwd_path, const char *group_path, struct user_ids *out,
		 char *err, size_t errlen);

#endif
