/*
 * The reference of the chat benchmark: a chat server built the way the original l4chat
 * server was (see ../../../shared/seed/README.md), written here for the benchmark only: one
 * thread per client, reads of at most 100 bytes, and every read written to every client, the
 * sender included, with blocking writes, one client after another, under one lock. It
 * ignores SIGPIPE (the original did not, and died when a client left mid-write), so that it
 * lives through a benchmark run. Not part of l4chat.
 *
 * Usage: chat_server <port>   (listens on 127.0.0.1)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 5000
#define READ_BYTES 100

static int clients[MAX_CLIENTS];
static int client_count = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void send_all(int fd, const char *data, ssize_t length) {
  while (length > 0) {
    ssize_t n = write(fd, data, (size_t)length);
    if (n <= 0) return;
    data += n;
    length -= n;
  }
}

static void *serve(void *arg) {
  int fd = (int)(long)arg;
  char buf[READ_BYTES];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < client_count; i++) send_all(clients[i], buf, n);
    pthread_mutex_unlock(&lock);
  }
  pthread_mutex_lock(&lock);
  for (int i = 0; i < client_count; i++) {
    if (clients[i] == fd) {
      clients[i] = clients[--client_count];
      break;
    }
  }
  pthread_mutex_unlock(&lock);
  close(fd);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: chat_server <port>\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 512) != 0) {
    perror("chat_server");
    return 1;
  }
  while (1) {
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) continue;
    pthread_mutex_lock(&lock);
    if (client_count == MAX_CLIENTS) {
      pthread_mutex_unlock(&lock);
      close(fd);
      continue;
    }
    clients[client_count++] = fd;
    pthread_mutex_unlock(&lock);
    pthread_t thread;
    pthread_create(&thread, NULL, serve, (void *)(long)fd);
    pthread_detach(thread);
  }
}
