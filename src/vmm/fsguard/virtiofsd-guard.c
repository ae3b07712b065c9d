/*
 * virtiofsd-guard: runs a program (QEMU's virtiofsd) under a seccomp filter that refuses, with EPERM, every system
 * call that would give a file a set-user-ID or set-group-ID bit or make a character or block device. The rest of
 * the program's system calls are allowed (its own sandbox narrows them further); the filter is inherited by every
 * thread and child it makes and cannot be removed.
 *
 * Why: a guest's root writes through virtiofsd into a host directory, and virtiofsd (root on the host) creates
 * files with the guest's uid, so without this a guest could leave a setuid-root binary on the host. Dropping
 * CAP_FSETID does not stop an owner's chmod(04755), hence a filter on the mode arguments themselves.
 *
 *   virtiofsd-guard PROGRAM [ARG...]
 *
 * execs PROGRAM (searched on PATH when it has no slash) with the filter installed and no_new_privs set.
 *
 * Exit 126 when the filter cannot be installed or PROGRAM cannot be executed (nothing runs unfiltered).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __x86_64__
#error "virtiofsd-guard knows the x86_64 system call numbers only"
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

#define SPECIAL_BITS (S_ISUID | S_ISGID)
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i)) /* little endian: the low 32 bits (mode_t) */
#define DENY (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

static struct sock_filter prog[96];
static unsigned short len;

static void emit(struct sock_filter s) { prog[len++] = s; }

/*
 * One block per system call: when the call is `nr`, its mode (argument `arg`) must have neither S_ISUID nor
 * S_ISGID and, with `devices`, must not be a character or block device; otherwise the next block.
 */
static void mode_rule(unsigned nr, unsigned arg, int devices) {
  emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
  emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, devices ? 7 : 4));
  emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(arg)));
  emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, SPECIAL_BITS, devices ? 4 : 1, 0));
  if (devices) {
    emit((struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, S_IFMT));
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, S_IFCHR, 2, 0));
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, S_IFBLK, 1, 0));
  }
  emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, DENY));
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: virtiofsd-guard PROGRAM [ARG...]\n");
    return 126;
  }
  /* Only native x86_64 system calls: another architecture's or the x32 ABI's numbers end the process. */
  emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
  emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
  emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1));
  emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  mode_rule(SYS_chmod, 1, 0);
  mode_rule(SYS_fchmod, 1, 0);
  mode_rule(SYS_fchmodat, 2, 0);
  mode_rule(SYS_fchmodat2, 2, 0);
  mode_rule(SYS_creat, 1, 0);
  mode_rule(SYS_open, 2, 0); /* glibc passes 0 as the mode when the flags take none */
  mode_rule(SYS_openat, 3, 0);
  mode_rule(SYS_mknod, 1, 1);
  mode_rule(SYS_mknodat, 2, 1);
  /* openat2 carries its mode in a structure a filter cannot read: ENOSYS, so that a caller falls back to openat. */
  emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
  emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1));
  emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)));
  emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));

  struct sock_fprog fprog = {.len = len, .filter = prog};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0) {
    fprintf(stderr, "virtiofsd-guard: cannot install the seccomp filter: %s\n", strerror(errno));
    return 126;
  }
  execvp(argv[1], argv + 1);
  fprintf(stderr, "virtiofsd-guard: cannot execute %s: %s\n", argv[1], strerror(errno));
  return 126;
}
