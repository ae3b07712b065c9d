/* settings.c: kernel tunables that init writes once at boot, listed by the host in the initramfs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "settings.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A path init may write: under /sys/ or /proc/sys/, with no ".." component. */
static int allowed(const char *path)
{
	if (strncmp(path, "/sys/", 5) != 0 && strncmp(path, "/proc/sys/", 10) != 0)
		return 0;
	return strstr(path, "/..") == NULL;
}

int apply_settings(const char *file, const char *root)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return 0;
	int failed = 0;
	char line[1024];
	while (fgets(line, sizeof line, f)) {
		char *path = line + strspn(line, " \t");
		path[strcspn(path, "\r\n")] = 0;
		if (!*path || *path == '#')
			continue;
		char *sep = path + strcspn(path, " \t");
		if (!*sep || !allowed(path)) {
			dprintf(2, "boson-init: ignoring setting \"%s\"\n", path);
			failed++;
			continue;
		}
		*sep = 0;
		const char *value = sep + 1 + strspn(sep + 1, " \t");
		char target[1200];
		snprintf(target, sizeof target, "%s%s", root, path);
		int fd = open(target, O_WRONLY | O_CLOEXEC);
		ssize_t n = -1;
		if (fd >= 0) {
			n = write(fd, value, strlen(value));
			close(fd);
		}
		if (n != (ssize_t)strlen(value)) {
			dprintf(2, "boson-init: setting %s: %s\n", path, strerror(errno));
			failed++;
		}
	}
	fclose(f);
	return failed;
}
