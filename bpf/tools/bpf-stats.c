// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bpf-stats: keeps the kernel's per-program run-time statistics on
 * (run_time_ns, run_cnt in `bpftool prog show`) for as long as it runs, so
 * a benchmark can time the programs in a live flow. BPF_ENABLE_STATS hands
 * back an fd and the statistics stay on while any such fd is open: they go
 * off by themselves when this process ends, however it ends, unlike the
 * kernel.bpf_stats_enabled sysctl, and others' holds are left alone.
 *
 *   bpf-stats     print "enabled", then wait until stdin closes
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	union bpf_attr attr;
	char buf[64];
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.enable_stats.type = BPF_STATS_RUN_TIME;
	fd = syscall(__NR_bpf, BPF_ENABLE_STATS, &attr, sizeof(attr));
	if (fd < 0) {
		fprintf(stderr, "bpf-stats: BPF_ENABLE_STATS: %s\n", strerror(errno));
		return 1;
	}
	printf("enabled\n");
	fflush(stdout);
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0 || errno == EINTR)
		errno = 0;
	close(fd);
	return 0;
}
