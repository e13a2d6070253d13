/*
 * A minimal TCP relay in C, the ceiling of what a relay's own work can reach on this machine:
 * one thread, one edge-triggered epoll set, no balancing, no table, no limits. It relays
 * 127.0.0.1:<port> to 127.0.0.1:<backend port>, both ways, with half-close.
 *
 *   copy:   reads into one 1 MiB buffer shared by every connection and writes at once; only
 *           what the destination does not take is kept (a buffer of its own, exactly that big)
 *   splice: moves bytes through a 1 MiB pipe per direction with splice(2), never into user
 *           space; the pipe is made on a direction's first bytes
 *
 * Usage: c_relay <port> <backend port> copy|splice
 * Built and run by `deno task bench --contender reference-c-copy,reference-c-splice`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (1 << 20)
#define EVENTS 512

/* One direction: bytes read from src go to dst. */
struct flow {
  int src, dst;
  char *kept;       /* copy: what dst has not taken yet */
  size_t kept_off, kept_len;
  int pipe_r, pipe_w; /* splice: -1 until the first bytes */
  size_t in_pipe;
  int done;         /* src has ended and everything is passed on */
};

/* Both directions of one client's connection; what epoll returns for either socket. */
struct pair {
  int fds[2];       /* client, backend */
  struct flow up, down;
  int closed;       /* freed after the batch of events, which may still name it */
};

static int splicing;
static char shared[CHUNK];
static struct pair *closed[EVENTS];
static int closed_count;

static void fail(const char *what) {
  fprintf(stderr, "c_relay: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Closes both sockets now; the memory goes after the batch (see free_closed). */
static void close_pair(struct pair *p) {
  struct flow *flows[2] = {&p->up, &p->down};
  for (int i = 0; i < 2; i++) {
    close(p->fds[i]);
    if (flows[i]->pipe_r >= 0) {
      close(flows[i]->pipe_r);
      close(flows[i]->pipe_w);
    }
  }
  p->closed = 1;
  closed[closed_count++] = p;
}

static void free_closed(void) {
  for (int i = 0; i < closed_count; i++) {
    free(closed[i]->up.kept);
    free(closed[i]->down.kept);
    free(closed[i]);
  }
  closed_count = 0;
}

/* Writes what is kept; 1 when it is all out, 0 when dst is full, -1 on an error. */
static int drain(struct flow *f) {
  if (splicing) {
    while (f->in_pipe > 0) {
      ssize_t n = splice(f->pipe_r, NULL, f->dst, NULL, f->in_pipe,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n < 0) return errno == EAGAIN ? 0 : -1;
      f->in_pipe -= (size_t)n;
    }
    return 1;
  }
  while (f->kept_len > 0) {
    ssize_t n = send(f->dst, f->kept + f->kept_off, f->kept_len, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    f->kept_off += (size_t)n;
    f->kept_len -= (size_t)n;
  }
  free(f->kept);
  f->kept = NULL;
  return 1;
}

/* Moves what it can from src to dst; -1 when the pair must close. */
static int pump(struct flow *f) {
  while (!f->done) {
    int out = drain(f);
    if (out <= 0) return out;
    ssize_t n;
    if (splicing) {
      if (f->pipe_r < 0) {
        int fds[2];
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return -1;
        fcntl(fds[0], F_SETPIPE_SZ, CHUNK);
        f->pipe_r = fds[0];
        f->pipe_w = fds[1];
      }
      n = splice(f->src, NULL, f->pipe_w, NULL, CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) f->in_pipe = (size_t)n;
    } else {
      n = recv(f->src, shared, CHUNK, 0);
      if (n > 0) {
        ssize_t sent = send(f->dst, shared, (size_t)n, MSG_NOSIGNAL);
        if (sent < 0 && errno != EAGAIN) return -1;
        if (sent < 0) sent = 0;
        if (sent < n) {
          f->kept_len = (size_t)(n - sent);
          f->kept_off = 0;
          f->kept = malloc(f->kept_len);
          if (f->kept == NULL) return -1;
          memcpy(f->kept, shared + sent, f->kept_len);
        }
      }
    }
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    if (n == 0) {
      shutdown(f->dst, SHUT_WR);
      f->done = 1;
    }
  }
  return 0;
}

/* Either socket of `p` had events `ev`: both directions move on. */
static void events(struct pair *p, uint32_t ev) {
  if (p->closed) return;
  if ((ev & EPOLLERR) || pump(&p->up) < 0 || pump(&p->down) < 0 ||
      (p->up.done && p->down.done)) {
    close_pair(p);
  }
}

static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  if (fd < 0) fail("socket");
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) fail("bind");
  if (listen(fd, 4096) < 0) fail("listen");
  return fd;
}

static void accept_all(int ep, int listener, int backend_port) {
  for (;;) {
    int client = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) return;
    int backend = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)backend_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (backend < 0 ||
        (connect(backend, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS)) {
      close(client);
      if (backend >= 0) close(backend);
      continue;
    }
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(backend, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct pair *p = calloc(1, sizeof *p);
    if (p == NULL) {
      close(client);
      close(backend);
      continue;
    }
    p->fds[0] = client;
    p->fds[1] = backend;
    p->up = (struct flow){.src = client, .dst = backend, .pipe_r = -1, .pipe_w = -1};
    p->down = (struct flow){.src = backend, .dst = client, .pipe_r = -1, .pipe_w = -1};
    for (int i = 0; i < 2; i++) {
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                               .data.ptr = p};
      epoll_ctl(ep, EPOLL_CTL_ADD, p->fds[i], &ev);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 4 || atoi(argv[1]) <= 0 || atoi(argv[2]) <= 0 ||
      (strcmp(argv[3], "copy") != 0 && strcmp(argv[3], "splice") != 0)) {
    fprintf(stderr, "usage: c_relay <port> <backend port> copy|splice\n");
    return 2;
  }
  splicing = strcmp(argv[3], "splice") == 0;
  signal(SIGPIPE, SIG_IGN);
  int listener = listen_on(atoi(argv[1])), backend_port = atoi(argv[2]);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fail("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  struct epoll_event ready[EVENTS];
  for (;;) {
    int n = epoll_wait(ep, ready, EVENTS, -1);
    if (n < 0 && errno != EINTR) fail("epoll_wait");
    for (int i = 0; i < n; i++) {
      if (ready[i].data.ptr == NULL) accept_all(ep, listener, backend_port);
      else events(ready[i].data.ptr, ready[i].events);
    }
    free_closed();
  }
}
