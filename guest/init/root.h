/* root.h: early boot (mounts, modules, stdio), device discovery in sysfs, and the container's root filesystem. */
#ifndef BOSON_ROOT_H
#define BOSON_ROOT_H

#include <stddef.h>
#include <sys/types.h>

#include "proto.h"

#define NEWROOT "/newroot" /* the container's root, init stays outside it */

/* Mounts /proc, /sys and /dev (devtmpfs) for init itself, ignoring "already mounted". */
void mount_early(void);

/* A VM booted ahead of its container (kernel argument boson.warmup=<root fstype>: the warm pool) builds the
 * container's root before HELLO, as prepare_root would for its disks (boson-root, boson-scratch), and runs the
 * image's /bin/sh once: the start after SPEC then only writes the SPEC's /etc files, and under TCG the kernel paths
 * of a start are translated already. Does nothing without the argument. With boson.template as well (a template VM,
 * cloned for many containers) only the root disk is mounted: each clone's writable layer is another file, mounted
 * with the overlay and the API filesystems when its SPEC comes. Returns 1 for a warm pool's VM (its own clones
 * share nothing of it), else 0. */
int warm_up(void);

/* Makes sure fds 0, 1 and 2 are open (the console, else /dev/null), so no later fd lands on them. */
void ensure_stdio(void);

/* Loads every module listed in /boson/modules, in order. A missing file means no modules. */
void load_modules(void);

/* Waits up to 5 s for a device in /sys/<dir>/<prefix>* whose attribute file <attr> reads value and whose node
 * /dev/<entry> exists; writes that path to dev. Returns 0, or -1 on timeout. */
int wait_device(const char *dir, const char *prefix, const char *attr, const char *value, char *dev, size_t devlen);

/* Creates path and its missing parents (like mkdir -p); returns 0 or -1 with errno. */
int mkdir_p(const char *path, mode_t mode);

/* Builds the container's root at NEWROOT: image disk read-only + scratch (or tmpfs) in an overlay, with
 * /etc/resolv.conf and /etc/hosts written (DNS, DNS_SEARCH, HOSTS), the volumes mounted (MOUNT), then proc, sys, dev,
 * dev/pts, dev/shm and run mounted inside. Reports MOUNT_FAILED on failure. */
void prepare_root(const struct spec *spec);

/* Unmounts the volumes (MOUNT records), last first; lazily where busy. */
void unmount_volumes(const struct spec *spec);

/* Unmounts the container root and the disks (lazily where busy). */
void unmount_all(void);

#endif
