/*
 * passt-guard: loaded into every passt Boson starts (LD_PRELOAD; built by scripts/setup.sh into
 * build/host/passt-guard.so). passt 0.0~git20230309 (Debian 12) special-cases a guest's connection to a loopback
 * address: it connects to the host's own 127.0.0.0/8 without binding the socket to the outbound interface, whatever
 * --no-map-gw and --outbound-if4 say, and sends UDP there too. A guest root that routes 127.0.0.0/8 out of its
 * interface would so reach every service on the host's loopback. This library refuses, in passt's process, every
 * connect() and every send to a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) with ECONNREFUSED.
 *
 * passt accepts connections to published ports on its listening sockets and never needs to connect or send to
 * loopback for them, with one exception: a UDP port published in rootless mode cannot answer a client on the host's
 * loopback (an answer would be a send to 127.0.0.1). It announces itself on stderr (the VM's log) once loaded, so that
 * Boson can refuse to run a passt in which it did not load (e.g. an AppArmor profile that forbids mapping it).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int is_loopback(const struct sockaddr *sa, socklen_t len) {
  if (sa == NULL) return 0;
  if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return 0;
}

__attribute__((constructor)) static void announce(void) {
  static const char line[] = "boson-passt-guard: loaded\n";
  ssize_t ignored = write(2, line, sizeof line - 1);
  (void)ignored;
}

int connect(int fd, const struct sockaddr *sa, socklen_t len) {
  static int (*real)(int, const struct sockaddr *, socklen_t);
  if (is_loopback(sa, len)) {
    errno = ECONNREFUSED;
    return -1;
  }
  if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
  return real(fd, sa, len);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa, socklen_t len) {
  static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
  if (is_loopback(sa, len)) {
    errno = ECONNREFUSED;
    return -1;
  }
  if (!real) real = (ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "sendto");
  return real(fd, buf, n, flags, sa, len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  static ssize_t (*real)(int, const struct msghdr *, int);
  if (msg && is_loopback((const struct sockaddr *)msg->msg_name, msg->msg_namelen)) {
    errno = ECONNREFUSED;
    return -1;
  }
  if (!real) real = (ssize_t (*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
  return real(fd, msg, flags);
}

int sendmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags) {
  static int (*real)(int, struct mmsghdr *, unsigned int, int);
  for (unsigned int i = 0; vec && i < n; i++) {
    if (is_loopback((const struct sockaddr *)vec[i].msg_hdr.msg_name, vec[i].msg_hdr.msg_namelen)) {
      if (i == 0) {
        errno = ECONNREFUSED;
        return -1;
      }
      n = i; /* the messages before it are sent; the caller sees a short count */
      break;
    }
  }
  if (!real) real = (int (*)(int, struct mmsghdr *, unsigned int, int))dlsym(RTLD_NEXT, "sendmmsg");
  return real(fd, vec, n, flags);
}
