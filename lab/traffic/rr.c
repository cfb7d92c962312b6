// SPDX-License-Identifier: Apache-2.0
/*
 * lab-rr: TCP request/response transactions, as netperf's TCP_RR and TCP_CRR measure them.
 *
 * Debian ships netperf only in non-free, and sockperf 3.7 (Debian 12) speaks IPv4 only and
 * needs messages of 14..65506 bytes, so neither can run the seed's 1-byte and 80000-byte
 * request/response tests towards IPv6-only pods. This tool does exactly those tests and
 * nothing more; it carries no framing of its own, so the payload on the wire is the requested
 * size.
 *
 *   lab-rr server --port P --request N --response M [--per-connection K]
 *       Accepts connections one at a time (in the order they arrive) on [::]:P (IPv4 too).
 *       For each: read N bytes, write M bytes, repeatedly; with K > 0 the server closes the
 *       connection after K transactions (it closes first, so the client's ephemeral ports do
 *       not pile up in TIME_WAIT during a connection-rate test).
 *
 *   lab-rr client --host ADDR|NAME --port P --request N --response M --seconds S
 *                 [--connect-each] [--warmup W]
 *       One transaction in flight. rr: one connection, transactions back to back. With
 *       --connect-each (crr): every transaction is connect + request + response + the server's
 *       close, so transactions/s is connections/s. The first W seconds are not counted.
 *       Prints one JSON object: transactions, transactions/s and the latency distribution of
 *       single transactions (exact percentiles over every sample, CLOCK_MONOTONIC), and all of
 *       them counted in log-spaced buckets (HIST_PER_DECADE per decade of microseconds) so
 *       the whole distribution can be kept and drawn (lab/scenarios/records.py).
 *
 * Both ends set TCP_NODELAY (as netperf does), so a transaction is not delayed by Nagle.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LAB_RR_VERSION "2"
#define MAX_MESSAGE (64u << 20)

struct opts {
	const char *host;
	unsigned port;
	unsigned long request, response;
	unsigned long per_connection;
	double seconds, warmup;
	int connect_each;
};

static void die(const char *what)
{
	fprintf(stderr, "lab-rr: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void fail(const char *msg)
{
	fprintf(stderr, "lab-rr: %s\n", msg);
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Read exactly LEN bytes: 1 on success, 0 on EOF before the first byte, -1 on error. */
static int read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);

		if (n == 0)
			return got == 0 ? 0 : -1;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += n;
	}
	return 1;
}

static int write_full(int fd, const char *buf, size_t len)
{
	size_t sent = 0;

	while (sent < len) {
		ssize_t n = send(fd, buf + sent, len - sent, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		sent += n;
	}
	return 0;
}

static void nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		die("TCP_NODELAY");
}

static int serve(const struct opts *o)
{
	struct sockaddr_in6 addr = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT,
				     .sin6_port = htons(o->port) };
	size_t size = o->request > o->response ? o->request : o->response;
	char *buf = calloc(1, size ? size : 1);
	int one = 1, zero = 0;
	int lfd;

	if (!buf)
		die("calloc");
	lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)))
		die("IPV6_V6ONLY");
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)))
		die("bind");
	if (listen(lfd, 1024))
		die("listen");
	printf("listening on port %u\n", o->port);
	fflush(stdout);

	for (;;) {
		unsigned long done = 0;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept");
		}
		nodelay(fd);
		for (;;) {
			if (read_full(fd, buf, o->request) <= 0)
				break;
			if (write_full(fd, buf, o->response))
				break;
			if (o->per_connection && ++done == o->per_connection)
				break;
		}
		close(fd);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in microseconds. */
static double pct_us(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1] / 1000.0;
}

/* Bucket k of the histogram holds latencies in [10^(k/N), 10^((k+1)/N)) microseconds. */
#define HIST_PER_DECADE 20

static long bucket_of(uint64_t ns)
{
	return (long)floor(log10(ns / 1000.0) * HIST_PER_DECADE);
}

/* The sorted latencies as "first": k0, "counts": [...] (consecutive buckets from k0). */
static void print_histogram(const uint64_t *v, size_t n)
{
	long first = bucket_of(v[0] ? v[0] : 1), k = first;
	size_t i, count = 0;

	printf("\"histogram\": {\"unit\": \"us\", \"per_decade\": %d, \"first\": %ld, "
	       "\"counts\": [", HIST_PER_DECADE, first);
	for (i = 0; i < n; i++) {
		long b = bucket_of(v[i] ? v[i] : 1);

		if (b < k) /* sorted: only rounding could step back; keep it in this bucket */
			b = k;
		for (; k < b; k++) {
			printf("%zu, ", count);
			count = 0;
		}
		count++;
	}
	printf("%zu]}", count);
}

/* A transaction that takes this long means a lost peer or a mismatched server: fail. */
#define STALL_SECONDS 10

static int connect_to(const struct addrinfo *ai)
{
	struct timeval stall = { .tv_sec = STALL_SECONDS };
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &stall, sizeof(stall)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stall, sizeof(stall)))
		die("SO_RCVTIMEO");
	while (connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		if (errno != EINTR)
			die("connect");
	}
	nodelay(fd);
	return fd;
}

static int client(const struct opts *o)
{
	/* --host is an address, or a name (e.g. one a DNS64 resolver answers), resolved once
	 * before the clock starts; for a name AI_ADDRCONFIG leaves out a family the host has no
	 * address of (an IPv6-only pod gets the AAAA first, not an unreachable A). */
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST |
								      AI_NUMERICSERV };
	size_t size = o->request > o->response ? o->request : o->response;
	char *buf = calloc(1, size ? size : 1);
	size_t cap = 1 << 16, n = 0;
	uint64_t *lat = malloc(cap * sizeof(*lat));
	uint64_t start, counted_from, end, t0, t1 = 0;
	double sum = 0, elapsed;
	struct addrinfo *ai;
	char port[16];
	int fd = -1, err;

	if (!buf || !lat)
		die("malloc");
	snprintf(port, sizeof(port), "%u", o->port);
	err = getaddrinfo(o->host, port, &hints, &ai);
	if (err == EAI_NONAME) {
		hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
		err = getaddrinfo(o->host, port, &hints, &ai);
	}
	if (err) {
		fprintf(stderr, "lab-rr: %s: %s\n", o->host, gai_strerror(err));
		return 2;
	}
	/* A persistent connection is made before the clock starts, as netperf's TCP_RR does:
	 * the window holds transactions only, however long a loaded machine takes to connect. */
	if (!o->connect_each)
		fd = connect_to(ai);
	start = now_ns();
	counted_from = start + (uint64_t)(o->warmup * 1e9);
	end = counted_from + (uint64_t)(o->seconds * 1e9);
	for (t0 = now_ns(); t0 < end; t0 = t1) {
		if (o->connect_each)
			fd = connect_to(ai);
		if (write_full(fd, buf, o->request))
			die("send");
		err = read_full(fd, buf, o->response);
		if (err < 0)
			die("receiving the response");
		if (err == 0)
			fail("the server closed the connection before responding");
		if (o->connect_each) {
			char c;

			/* The server closes first: wait for its FIN, then close our end. */
			if (recv(fd, &c, 1, 0) != 0)
				fail("the server did not close after the transaction "
				     "(is it running with --per-connection 1?)");
			close(fd);
		}
		t1 = now_ns();
		if (t0 < counted_from)
			continue;
		if (n == cap) {
			cap *= 2;
			lat = realloc(lat, cap * sizeof(*lat));
			if (!lat)
				die("realloc");
		}
		lat[n++] = t1 - t0;
		sum += t1 - t0;
	}
	if (!o->connect_each)
		close(fd);
	elapsed = (t1 > counted_from ? t1 - counted_from : 0) / 1e9;
	if (n == 0)
		fail("no transaction completed in the measured time");
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("{\"tool\": \"lab-rr\", \"version\": \"%s\", \"mode\": \"%s\", "
	       "\"request_bytes\": %lu, \"response_bytes\": %lu, \"seconds\": %.6f, "
	       "\"transactions\": %zu, \"transactions_per_second\": %.3f, "
	       "\"latency_us\": {\"min\": %.3f, \"mean\": %.3f, \"p50\": %.3f, \"p90\": %.3f, "
	       "\"p99\": %.3f, \"p999\": %.3f, \"max\": %.3f}, ",
	       LAB_RR_VERSION, o->connect_each ? "crr" : "rr", o->request, o->response, elapsed,
	       n, n / elapsed, lat[0] / 1000.0, sum / n / 1000.0, pct_us(lat, n, 50),
	       pct_us(lat, n, 90), pct_us(lat, n, 99), pct_us(lat, n, 99.9), lat[n - 1] / 1000.0);
	print_histogram(lat, n);
	printf("}\n");
	freeaddrinfo(ai);
	return 0;
}

static unsigned long parse_size(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > MAX_MESSAGE) {
		fprintf(stderr, "lab-rr: bad %s '%s' (0..%u)\n", what, s, MAX_MESSAGE);
		exit(2);
	}
	return v;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: lab-rr server --port P --request N --response M [--per-connection K]\n"
		"       lab-rr client --host ADDR --port P --request N --response M --seconds S\n"
		"                     [--connect-each] [--warmup W]\n"
		"       lab-rr --version\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "request", required_argument, NULL, 'q' },
		{ "response", required_argument, NULL, 'r' },
		{ "per-connection", required_argument, NULL, 'k' },
		{ "seconds", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "connect-each", no_argument, NULL, 'c' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .request = 1, .response = 1, .seconds = 1 };
	const char *mode;
	int c;

	if (argc > 1 && !strcmp(argv[1], "--version")) {
		printf("lab-rr %s\n", LAB_RR_VERSION);
		return 0;
	}
	if (argc < 2)
		usage();
	mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'H': o.host = optarg; break;
		case 'p': o.port = parse_size(optarg, "port"); break;
		case 'q': o.request = parse_size(optarg, "request size"); break;
		case 'r': o.response = parse_size(optarg, "response size"); break;
		case 'k': o.per_connection = parse_size(optarg, "per-connection count"); break;
		case 's': o.seconds = atof(optarg); break;
		case 'w': o.warmup = atof(optarg); break;
		case 'c': o.connect_each = 1; break;
		default: usage();
		}
	}
	if (optind != argc || !o.port || o.port > 65535 || o.request == 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(mode, "server"))
		return serve(&o);
	if (!strcmp(mode, "client")) {
		if (!o.host || o.seconds <= 0 || o.warmup < 0)
			usage();
		return client(&o);
	}
	usage();
	return 2;
}
