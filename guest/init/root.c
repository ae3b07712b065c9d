/* root.c: early boot, device discovery and the container's root filesystem (see root.h). */
#define _GNU_SOURCE
#include "root.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "port.h"

#define MODULES_FILE "/boson/modules"
#define LOWER_DIR "/boson/lower"
#define SCRATCH_DIR "/boson/scratch"
#define DEVICE_WAIT_MS 5000 /* how long to wait for the port and the disks */
#define BOSON_BLKFLSBUF _IO(0x12, 97) /* <linux/fs.h>, whose macros clash with <sys/mount.h> */

/* Mounts what init itself needs, ignoring "already mounted". */
void mount_early(void)
{
	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mkdir("/dev", 0755);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 && errno != EBUSY)
		dprintf(2, "boson-init: mount /proc: %s\n", strerror(errno));
	if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 && errno != EBUSY)
		dprintf(2, "boson-init: mount /sys: %s\n", strerror(errno));
	if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY)
		dprintf(2, "boson-init: mount /dev: %s\n", strerror(errno));
}

/* Makes sure fds 0, 1 and 2 are open (the console, else /dev/null), so no later fd lands on them. */
void ensure_stdio(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		if (open("/dev/console", O_RDWR | O_NOCTTY) < 0)
			open("/dev/null", O_RDWR);
	}
}

/* Loads every module listed in MODULES_FILE, in order. A missing file means no modules. */
void load_modules(void)
{
	FILE *f = fopen(MODULES_FILE, "re");
	if (!f)
		return;
	char line[4096];
	while (fgets(line, sizeof line, f)) {
		char *path = line + strspn(line, " \t");
		path[strcspn(path, "\r\n")] = 0;
		if (!*path || *path == '#')
			continue;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			dprintf(2, "boson-init: module %s: %s\n", path, strerror(errno));
			continue;
		}
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			dprintf(2, "boson-init: finit_module %s: %s\n", path, strerror(errno));
		close(fd);
	}
	fclose(f);
}

/* Reads a small sysfs file into buf without the trailing newline. Returns 0, or -1 if it cannot be read. */
static int read_attr(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* Looks for a device in /sys/<dir>/<prefix>* whose attribute file <attr> reads value; on success writes
 * "/dev/<entry>" to dev and returns 0 if that node exists. */
static int find_device(const char *dir, const char *prefix, const char *attr, const char *value, char *dev,
		       size_t devlen)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int rc = -1;
	struct dirent *e;
	while (rc < 0 && (e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		char path[512], val[256];
		snprintf(path, sizeof path, "%s/%s/%s", dir, e->d_name, attr);
		if (read_attr(path, val, sizeof val) < 0 || strcmp(val, value) != 0)
			continue;
		snprintf(dev, devlen, "/dev/%s", e->d_name);
		if (access(dev, F_OK) == 0)
			rc = 0;
	}
	closedir(d);
	return rc;
}

/* Polls find_device for up to DEVICE_WAIT_MS. */
int wait_device(const char *dir, const char *prefix, const char *attr, const char *value, char *dev,
		       size_t devlen)
{
	long long deadline = now_ms() + DEVICE_WAIT_MS;
	for (;;) {
		if (find_device(dir, prefix, attr, value, dev, devlen) == 0)
			return 0;
		if (now_ms() >= deadline)
			return -1;
		usleep(5000);
	}
}

/* Creates path and its missing parents (like mkdir -p); returns 0 or -1 with errno. */
int mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != 0)
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = c;
		if (!c)
			break;
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* Mounts fstype at target (created if needed) or reports MOUNT_FAILED. */
static void must_mount(const char *src, const char *target, const char *fstype, unsigned long flags,
		       const char *data)
{
	if (mkdir_p(target, 0755) < 0)
		fail(R_MOUNT_FAILED, 125, "mkdir %s: %s", target, strerror(errno));
	if (mount(src, target, fstype, flags, data) < 0)
		fail(R_MOUNT_FAILED, 125, "mount %s (%s) on %s: %s", src, fstype, target, strerror(errno));
}

/* Finds the virtio-blk disk with the given serial and writes its /dev path to dev, or reports MOUNT_FAILED. */
static void find_disk(const char *serial, char *dev, size_t len)
{
	if (wait_device("/sys/block", "vd", "serial", serial, dev, len) < 0)
		fail(R_MOUNT_FAILED, 125, "no virtio-blk disk with serial \"%s\"", serial);
}

/* Creates a device node (or symlink when target is set) in the container's /dev, logging failures. */
static void make_node(const char *name, mode_t mode, unsigned maj, unsigned min, const char *target)
{
	char path[256];
	snprintf(path, sizeof path, NEWROOT "/dev/%s", name);
	int rc = target ? symlink(target, path) : mknod(path, mode, makedev(maj, min));
	if (rc < 0 && errno != EEXIST)
		log_msg("create /dev/%s: %s", name, strerror(errno));
}

/* Writes NEWROOT/<name> (a regular file, replacing whatever was there, a symlink included) with text. */
static void write_etc_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof path, NEWROOT "/%s", name);
	if (mkdir_p(NEWROOT "/etc", 0755) < 0)
		fail(R_INTERNAL, 125, "create /etc: %s", strerror(errno));
	if (unlink(path) < 0 && errno != ENOENT)
		fail(R_INTERNAL, 125, "replace /%s: %s", name, strerror(errno));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	size_t n = strlen(text);
	if (fd < 0 || write(fd, text, n) != (ssize_t)n)
		fail(R_INTERNAL, 125, "write /%s: %s", name, strerror(errno));
	close(fd);
}

/* Appends to a fixed buffer, failing when it is full. */
static void append(char *buf, size_t size, size_t *len, const char *a, const char *b, const char *c)
{
	int n = snprintf(buf + *len, size - *len, "%s%s%s", a, b, c);
	if (n < 0 || (size_t)n >= size - *len)
		fail(R_SPEC_INVALID, 125, "DNS and HOSTS records exceed %zu bytes", size);
	*len += (size_t)n;
}

/* Writes /etc/resolv.conf (DNS, DNS_SEARCH) and /etc/hosts (HOSTS) in the container when the SPEC has them. */
static void write_etc_files(const struct spec *spec)
{
	static char buf[65536];
	size_t len = 0;
	if (spec->ndns || spec->ndns_search || spec->ndns_options) {
		for (size_t i = 0; i < spec->ndns; i++)
			append(buf, sizeof buf, &len, "nameserver ", spec->dns[i], "\n");
		if (spec->ndns_search) {
			append(buf, sizeof buf, &len, "search", "", "");
			for (size_t i = 0; i < spec->ndns_search; i++)
				append(buf, sizeof buf, &len, " ", spec->dns_search[i], "");
			append(buf, sizeof buf, &len, "\n", "", "");
		}
		if (spec->ndns_options) {
			append(buf, sizeof buf, &len, "options", "", "");
			for (size_t i = 0; i < spec->ndns_options; i++)
				append(buf, sizeof buf, &len, " ", spec->dns_options[i], "");
			append(buf, sizeof buf, &len, "\n", "", "");
		}
		write_etc_file("etc/resolv.conf", buf);
	}
	if (spec->nhosts) {
		len = 0;
		append(buf, sizeof buf, &len, "127.0.0.1\tlocalhost\n::1\tlocalhost\n", "", "");
		for (size_t i = 0; i < spec->nhosts; i++)
			append(buf, sizeof buf, &len, spec->hosts[i], "\n", "");
		write_etc_file("etc/hosts", buf);
	}
}

/* Mounts one volume (MOUNT record) into the container, or reports MOUNT_FAILED naming its target. */
static void mount_volume(const struct mount_spec *m)
{
	char target[4096];
	if (snprintf(target, sizeof target, NEWROOT "%s", m->target) >= (int)sizeof target)
		fail(R_MOUNT_FAILED, 125, "volume %s: path too long", m->target);
	if (mkdir_p(target, 0755) < 0)
		fail(R_MOUNT_FAILED, 125, "volume %s: create the mount point: %s", m->target, strerror(errno));
	unsigned long flags = m->read_only ? MS_RDONLY : 0;
	/* Host directories: nothing on them runs set-user-ID in the guest, and no device node there opens a device. */
	if (m->kind != MOUNT_DISK)
		flags |= MS_NOSUID | MS_NODEV;
	if (m->kind == MOUNT_DISK) {
		char dev[300];
		if (wait_device("/sys/block", "vd", "serial", m->source, dev, sizeof dev) < 0)
			fail(R_MOUNT_FAILED, 125, "volume %s: no virtio-blk disk with serial \"%s\"", m->target, m->source);
		if (mount(dev, target, m->fstype, flags, NULL) < 0)
			fail(R_MOUNT_FAILED, 125, "volume %s: mount %s (%s): %s", m->target, dev, m->fstype, strerror(errno));
		return;
	}
	/* 9p or virtiofs: the mount tag names the device; give a late probe a moment. */
	int virtiofs = m->kind == MOUNT_VIRTIOFS;
	const char *fstype = virtiofs ? "virtiofs" : m->fstype;
	const char *options = virtiofs ? NULL : "trans=virtio,version=9p2000.L,msize=524288";
	long long deadline = now_ms() + DEVICE_WAIT_MS;
	while (mount(m->source, target, fstype, flags, options) < 0) {
		int e = errno;
		if (e != ENOENT || now_ms() >= deadline)
			fail(R_MOUNT_FAILED, 125, "volume %s: mount %s share \"%s\": %s", m->target, fstype, m->source,
			     e == ENODEV ? (virtiofs ? "the guest kernel has no virtiofs support" : "the guest kernel has no 9p support") : strerror(e));
		usleep(10000);
	}
}

/* Unmounts the volumes (MOUNT records), last first, so that disks are clean before EXIT; lazily if busy. */
void unmount_volumes(const struct spec *spec)
{
	for (size_t i = spec->nmounts; i-- > 0;) {
		char target[4096];
		snprintf(target, sizeof target, NEWROOT "%s", spec->mounts[i].target);
		if (umount2(target, 0) < 0 && umount2(target, MNT_DETACH) < 0)
			log_msg("unmount %s: %s", spec->mounts[i].target, strerror(errno));
	}
}

/* Mounts the root disk, the writable layer (or tmpfs) and the overlay at NEWROOT, and proc, sys, dev, dev/pts,
 * dev/shm and run inside, with the device nodes. Reports MOUNT_FAILED on failure. `before_api` runs between the
 * overlay and the API filesystems (where the SPEC's /etc files and volumes go). */
static void mount_root(const char *root_disk, const char *root_fstype, const char *scratch_disk,
		       void (*before_api)(const struct spec *), const struct spec *spec, int lower_mounted)
{
	char dev[300];
	if (!lower_mounted) {
		find_disk(root_disk, dev, sizeof dev);
		must_mount(dev, LOWER_DIR, root_fstype, MS_RDONLY, NULL);
	}
	if (scratch_disk) {
		find_disk(scratch_disk, dev, sizeof dev);
		if (lower_mounted) {
			/* A clone of a template: the kernel read this disk's first blocks (partition scan) while the template
			 * booted, when the disk was the template's file; this one is the container's own. */
			int fd = open(dev, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || ioctl(fd, BOSON_BLKFLSBUF, 0) < 0)
				log_msg("flush %s: %s", dev, strerror(errno));
			if (fd >= 0)
				close(fd);
		}
		must_mount(dev, SCRATCH_DIR, "ext4", 0, NULL);
	} else {
		must_mount("tmpfs", SCRATCH_DIR, "tmpfs", 0, "mode=0755");
	}
	if (mkdir_p(SCRATCH_DIR "/upper", 0755) < 0 || mkdir_p(SCRATCH_DIR "/work", 0755) < 0)
		fail(R_MOUNT_FAILED, 125, "create overlay upper/work dirs: %s", strerror(errno));
	must_mount("overlay", NEWROOT, "overlay", 0,
		   "lowerdir=" LOWER_DIR ",upperdir=" SCRATCH_DIR "/upper,workdir=" SCRATCH_DIR "/work");

	if (before_api)
		before_api(spec);

	unsigned long safe = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	must_mount("proc", NEWROOT "/proc", "proc", safe, NULL);
	must_mount("sysfs", NEWROOT "/sys", "sysfs", safe | MS_RDONLY, NULL);
	/* cgroup v2 when the kernel has it (a pod VM limits each of its containers there); none is no error. */
	if (mount("cgroup2", NEWROOT "/sys/fs/cgroup", "cgroup2", safe, NULL) < 0 && errno != ENOENT && errno != ENODEV)
		log_msg("mount cgroup2: %s", strerror(errno));
	must_mount("tmpfs", NEWROOT "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=0755,size=65536k");
	must_mount("devpts", NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		   "newinstance,ptmxmode=0666,mode=0620,gid=5");
	must_mount("shm", NEWROOT "/dev/shm", "tmpfs", safe, "mode=1777,size=65536k");
	must_mount("tmpfs", NEWROOT "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");

	make_node("null", S_IFCHR | 0666, 1, 3, NULL);
	make_node("zero", S_IFCHR | 0666, 1, 5, NULL);
	make_node("full", S_IFCHR | 0666, 1, 7, NULL);
	make_node("random", S_IFCHR | 0666, 1, 8, NULL);
	make_node("urandom", S_IFCHR | 0666, 1, 9, NULL);
	make_node("tty", S_IFCHR | 0666, 5, 0, NULL);
	make_node("console", S_IFCHR | 0620, 5, 1, NULL);
	make_node("ptmx", 0, 0, 0, "pts/ptmx");
	make_node("fd", 0, 0, 0, "/proc/self/fd");
	make_node("stdin", 0, 0, 0, "/proc/self/fd/0");
	make_node("stdout", 0, 0, 0, "/proc/self/fd/1");
	make_node("stderr", 0, 0, 0, "/proc/self/fd/2");
	make_node("core", 0, 0, 0, "/proc/kcore");
}

/* The SPEC's part of the root: its /etc files, then its volumes. */
static void spec_files_and_volumes(const struct spec *spec)
{
	write_etc_files(spec);
	for (size_t i = 0; i < spec->nmounts; i++)
		mount_volume(&spec->mounts[i]);
}

/* The root fstype warm_up() mounted the container's root with ("" when it did not). */
static char prepared_fstype[32];
/* warm_up() mounted only the root disk (a template VM: boson.template), not the writable layer nor the overlay. */
static int prepared_lower_only;

/* Builds the container's root at NEWROOT: image disk read-only + scratch (or tmpfs) in an overlay, with
 * proc, sys, dev, dev/pts, dev/shm and run mounted inside. Reports MOUNT_FAILED on failure. In a VM booted ahead
 * of its container (warm_up) the mounts exist already: only the SPEC's /etc files are written. */
void prepare_root(const struct spec *spec)
{
	if (prepared_fstype[0]) {
		/* Booted for this shape: the host sends the same disks, and no volumes (their disks exist from boot). */
		if (strcmp(spec->root_disk, "boson-root") != 0 || !spec->scratch_disk ||
		    strcmp(spec->scratch_disk, "boson-scratch") != 0 || strcmp(spec->root_fstype ? spec->root_fstype : "", prepared_fstype) != 0 ||
		    spec->nmounts != 0)
			fail(R_MOUNT_FAILED, 125, "this micro-VM was prepared for another root (%s on boson-root, boson-scratch, no volumes)",
			     prepared_fstype);
		if (prepared_lower_only)
			mount_root(spec->root_disk, spec->root_fstype, spec->scratch_disk, spec_files_and_volumes, spec, 1);
		else
			write_etc_files(spec);
		return;
	}
	mount_root(spec->root_disk, spec->root_fstype, spec->scratch_disk, spec_files_and_volumes, spec, 0);
}

/* Unmounts the container root and the disks (lazily where busy). */
void unmount_all(void)
{
	umount2(NEWROOT, MNT_DETACH);
	if (umount2(SCRATCH_DIR, 0) < 0)
		umount2(SCRATCH_DIR, MNT_DETACH);
	if (umount2(LOWER_DIR, 0) < 0)
		umount2(LOWER_DIR, MNT_DETACH);
}


/* Reads the value of boson.warmup= from the kernel command line into out ("" when absent), and whether the
 * command line has boson.template into *template. */
static void warmup_fstype(char *out, size_t len, int *template)
{
	out[0] = 0;
	*template = 0;
	char line[4096];
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, line, sizeof line - 1);
	close(fd);
	if (n <= 0)
		return;
	line[n] = 0;
	for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n")) {
		if (strncmp(tok, "boson.warmup=", 13) == 0)
			snprintf(out, len, "%s", tok + 13);
		else if (strcmp(tok, "boson.template") == 0)
			*template = 1;
	}
}

int warm_up(void)
{
	char fstype[32];
	int template;
	warmup_fstype(fstype, sizeof fstype, &template);
	if (strcmp(fstype, "erofs") != 0 && strcmp(fstype, "ext4") != 0)
		return 0;
	if (template) {
		/* A template's clones each get their own writable layer (another file behind boson-scratch), so only the
		 * image's disk is mounted here: a mounted ext4 would be in every clone's memory. */
		char dev[300];
		find_disk("boson-root", dev, sizeof dev);
		must_mount(dev, LOWER_DIR, fstype, MS_RDONLY, NULL);
		prepared_lower_only = 1;
	} else {
		/* The container's root, as prepare_root builds it for the disks this VM was booted with (boson-root and
		 * its own writable layer boson-scratch, which becomes the container's). */
		mount_root("boson-root", fstype, "boson-scratch", NULL, NULL, 0);
	}
	snprintf(prepared_fstype, sizeof prepared_fstype, "%s", fstype);
	/* A shell of the image, started the way a container's process is: its pages are then in the page cache, and
	 * under TCG the kernel's fork, exec and exit paths are translated already. */
	pid_t pid = fork();
	if (pid == 0) {
		const char *root = prepared_lower_only ? LOWER_DIR : NEWROOT;
		int fdn = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fdn >= 0) {
			dup2(fdn, 0);
			dup2(fdn, 1);
			dup2(fdn, 2);
		}
		if (chroot(root) == 0 && chdir("/") == 0) {
			char *argv[] = {"sh", "-c", "true", NULL};
			char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
			execve("/bin/sh", argv, envp);
		}
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return !template;
}
