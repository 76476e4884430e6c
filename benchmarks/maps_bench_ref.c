/* Reference for benchmarks/maps_bench.py: the same map operations from C.
 * Built with gcc by the benchmark itself (never needed by pybpf).
 * usage: maps_bench_ref N_SINGLE N_DUMP   -> prints "name ops_per_second" lines */
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int create(uint32_t entries)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_HASH;
	a.key_size = 4;
	a.value_size = 8;
	a.max_entries = entries;
	return sys_bpf(BPF_MAP_CREATE, &a);
}

int main(int argc, char **argv)
{
	uint32_t n = argc > 1 ? atoi(argv[1]) : 100000, big = argc > 2 ? atoi(argv[2]) : 1000000;
	union bpf_attr a;
	uint32_t key;
	uint64_t value = 1;
	int fd = create(n);
	double t = now();
	for (key = 0; key < n; key++) {
		memset(&a, 0, sizeof(a));
		a.map_fd = fd; a.key = (uintptr_t)&key; a.value = (uintptr_t)&value;
		if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a)) { perror("update"); return 1; }
	}
	printf("update %.0f\n", n / (now() - t));
	t = now();
	for (key = 0; key < n; key++) {
		memset(&a, 0, sizeof(a));
		a.map_fd = fd; a.key = (uintptr_t)&key; a.value = (uintptr_t)&value;
		if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &a)) { perror("lookup"); return 1; }
	}
	printf("lookup %.0f\n", n / (now() - t));
	close(fd);

	fd = create(big);
	uint32_t *keys = malloc(big * 4), chunk = 4096, count, done = 0;
	uint64_t *values = malloc(big * 8);
	for (key = 0; key < big; key++) { keys[key] = key; values[key] = key; }
	t = now();
	memset(&a, 0, sizeof(a));
	a.batch.map_fd = fd; a.batch.keys = (uintptr_t)keys; a.batch.values = (uintptr_t)values;
	a.batch.count = big;
	if (sys_bpf(BPF_MAP_UPDATE_BATCH, &a)) { perror("update batch"); return 1; }
	printf("batch_update %.0f\n", big / (now() - t));
	uint64_t token_in = 0, token_out = 0;
	t = now();
	for (int first = 1;; first = 0) {
		memset(&a, 0, sizeof(a));
		a.batch.map_fd = fd;
		a.batch.in_batch = first ? 0 : (uintptr_t)&token_in;
		a.batch.out_batch = (uintptr_t)&token_out;
		a.batch.keys = (uintptr_t)(keys + done);
		a.batch.values = (uintptr_t)(values + done);
		a.batch.count = chunk < big - done ? chunk : big - done;
		long r = sys_bpf(BPF_MAP_LOOKUP_BATCH, &a);
		done += a.batch.count;
		if (r) break; /* ENOENT: end of map */
		token_in = token_out;
		if (done >= big) break;
	}
	double dump = now() - t;
	printf("batch_dump_seconds %.4f\n", dump);
	printf("batch_dump_entries %u\n", done);
	close(fd);
	return 0;
}
