/* C reference readers for benchmarks/ringbuf_bench.py: raw syscalls and mmap, no libbpf.
 *
 *   ringbuf_reader ring <map_fd> <data_size> <expected>
 *   ringbuf_reader perf <pages> <expected> <event_fd>...
 *
 * Each copies every 32-byte record out (as a reader handing records to an
 * application would), checks the sequence numbers, and prints
 * "<records> <seconds>".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct rec { uint64_t seq, cpu, magic, seq_x3; };

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int ring(int fd, uint64_t size, long expected)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t *cons = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uint64_t *prod = mmap(NULL, page + 2 * size, PROT_READ, MAP_SHARED, fd, page);
	if (cons == MAP_FAILED || prod == MAP_FAILED) { perror("mmap"); return 1; }
	unsigned char *data = (unsigned char *)prod + page;
	struct rec *out = malloc(sizeof(*out) * expected);
	long n = 0;
	double t0 = now();
	uint64_t c = __atomic_load_n(cons, __ATOMIC_ACQUIRE);
	while (n < expected) {
		uint64_t p = __atomic_load_n(prod, __ATOMIC_ACQUIRE);
		while (c < p) {
			uint32_t len = __atomic_load_n((uint32_t *)(data + (c & (size - 1))),
						       __ATOMIC_ACQUIRE);
			if (len & (1u << 31))
				break;
			if (!(len & (1u << 30)) && n < expected)
				memcpy(&out[n++], data + (c & (size - 1)) + 8, sizeof(struct rec));
			c += ((len & ~(3u << 30)) + 8 + 7) & ~7ull;
		}
		__atomic_store_n(cons, c, __ATOMIC_RELEASE);
	}
	double dt = now() - t0;
	for (long i = 1; i < n; i++)
		if (out[i].seq != out[i - 1].seq + 1) { fprintf(stderr, "gap at %ld\n", i); return 1; }
	printf("%ld %.6f\n", n, dt);
	return 0;
}

static int perf(long pages, long expected, int nfd, char **fds)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t size = pages * page;
	struct rec *out = malloc(sizeof(*out) * expected);
	unsigned char *base[64];
	long n = 0;
	for (int i = 0; i < nfd; i++) {
		base[i] = mmap(NULL, page + size, PROT_READ | PROT_WRITE, MAP_SHARED,
			       atoi(fds[i]), 0);
		if (base[i] == MAP_FAILED) { perror("mmap"); return 1; }
	}
	double t0 = now();
	while (n < expected) {
		for (int i = 0; i < nfd; i++) {
			/* struct perf_event_mmap_page: data_head @1024, data_tail @1032 */
			uint64_t *head_p = (uint64_t *)(base[i] + 1024), *tail_p = head_p + 1;
			uint64_t head = __atomic_load_n(head_p, __ATOMIC_ACQUIRE), tail = *tail_p;
			unsigned char *d = base[i] + page;
			while (tail < head) {
				uint64_t off = tail % size;
				uint32_t type = *(uint32_t *)(d + off);
				uint16_t rsize = *(uint16_t *)(d + off + 6);
				if (type == 9 && n < expected && off + rsize <= size)
					memcpy(&out[n++], d + off + 12, sizeof(struct rec));
				tail += rsize;
			}
			__atomic_store_n(tail_p, tail, __ATOMIC_RELEASE);
		}
	}
	printf("%ld %.6f\n", n, now() - t0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "ring"))
		return ring(atoi(argv[2]), strtoull(argv[3], 0, 0), atol(argv[4]));
	if (argc >= 5 && !strcmp(argv[1], "perf"))
		return perf(atol(argv[2]), atol(argv[3]), argc - 4, argv + 4);
	fprintf(stderr, "usage: see the comment at the top\n");
	return 2;
}
