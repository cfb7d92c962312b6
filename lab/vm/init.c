/* lab-vm-init: PID 1 of the lab's kernel VM.
 *
 * The kernel mounts the host's root (virtio-fs, read-only) and starts this program with the
 * path of a job file written by lab/vm/guest.py. The job lists, in order, the mounts that turn
 * the shared root into a usable system (tmpfs for /tmp /run /var, bpffs, the kernel's modules,
 * the writable shares), then the command: its arguments, environment and directory.
 *
 * It runs the command with stdout and stderr on pipes and relays both, framed, over one virtio
 * serial port ("lab.ctl") to the host, followed by the exit status. One port keeps the order:
 * the status arrives after the last byte of output. It then waits for the host's
 * acknowledgement, so nothing queued in the port is lost, and powers off.
 *
 * The job file is NUL-terminated fields: JOB_MAGIC, then records, each a keyword and its fields:
 *   mount FSTYPE SOURCE TARGET DATA FLAGS   symlink TARGET LINKPATH   mkdir PATH OCTAL-MODE
 *   insmod PATH   hostname NAME   cwd PATH   env NAME=VALUE   arg ARGUMENT
 * performed in file order (so the order of mounts is the writer's choice).
 *
 * Frames are a type byte, a little-endian u32 length, and the payload. Guest to host:
 *   'R' ready ("UPTIME RELEASE"), 'O' stdout, 'E' stderr, 'L' an init message,
 *   'S' status ("exit N" or "signal N"), 'F' a fatal init error (no command ran).
 * Host to guest: 'A' acknowledging 'S' or 'F'.
 *
 * A C program rather than a shell script because under emulation every exec costs about a
 * tenth of a second; this one makes the mounts with system calls and execs only the command.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

#define JOB_MAGIC "lab-vm-job 1"
#define CTL_PORT_NAME "lab.ctl"
#define ACK_TIMEOUT_MS 10000
#define PORT_WAIT_MS 10000

extern char **environ;

static int ctl = -1;
static char early_log[8192];
static size_t early_len;

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void frame(char type, const void *buf, size_t len)
{
	unsigned char hdr[5] = { (unsigned char)type, len & 0xff, (len >> 8) & 0xff,
				 (len >> 16) & 0xff, (len >> 24) & 0xff };

	write_all(ctl, hdr, sizeof(hdr));
	write_all(ctl, buf, len);
}

/* A message for the host: on the console always, as an 'L' frame once the port is open. */
static void say(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	dprintf(2, "lab-vm-init: %s\n", msg);
	if (ctl >= 0) {
		frame('L', msg, (size_t)n);
	} else if (early_len + (size_t)n + 1 <= sizeof(early_log)) {
		memcpy(early_log + early_len, msg, (size_t)n + 1);
		early_len += (size_t)n + 1;
	}
}

static void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static void wait_for_ack(void)
{
	struct pollfd p = { .fd = ctl, .events = POLLIN };
	char buf[64];

	if (poll(&p, 1, ACK_TIMEOUT_MS) > 0)
		(void)!read(ctl, buf, sizeof(buf));
}

static void fatal(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(2, "lab-vm-init: fatal: %s\n", msg);
	if (ctl >= 0) {
		frame('F', msg, strlen(msg));
		wait_for_ack();
	}
	power_off();
}

static char *read_file(const char *path, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || !buf)
		return NULL;
	for (;;) {
		ssize_t r;

		if (n == cap && !(buf = realloc(buf, cap *= 2)))
			return NULL;
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*len = n;
	return buf;
}

static void mkdir_p(const char *path)
{
	char tmp[4096];
	size_t len = strlen(path);

	if (len >= sizeof(tmp))
		return;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0755);
			*p = '/';
		}
	}
	mkdir(tmp, 0755);
}

struct flag_name {
	const char *name;
	unsigned long flag;
};

static const struct flag_name mount_flags[] = {
	{ "ro", MS_RDONLY }, { "nosuid", MS_NOSUID }, { "nodev", MS_NODEV },
	{ "noexec", MS_NOEXEC }, { "bind", MS_BIND }, { "rec", MS_REC },
};

/* mount FSTYPE SOURCE TARGET DATA FLAGS, FLAGS a comma list of mount_flags[] plus "mkdir"
 * (create TARGET first) and "nofail" (a failure is reported, not fatal). */
static void do_mount(char **f)
{
	const char *fstype = f[0], *source = f[1], *target = f[2], *data = f[3];
	unsigned long flags = 0;
	int mk = 0, nofail = 0;
	char opts[256], *tok, *save;

	snprintf(opts, sizeof(opts), "%s", f[4]);
	for (tok = strtok_r(opts, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		if (!strcmp(tok, "mkdir")) {
			mk = 1;
			continue;
		}
		if (!strcmp(tok, "nofail")) {
			nofail = 1;
			continue;
		}
		for (i = 0; i < sizeof(mount_flags) / sizeof(mount_flags[0]); i++)
			if (!strcmp(tok, mount_flags[i].name))
				break;
		if (i == sizeof(mount_flags) / sizeof(mount_flags[0]))
			fatal("mount %s: unknown flag %s", target, tok);
		flags |= mount_flags[i].flag;
	}
	if (mk)
		mkdir_p(target);
	if (mount(source, target, fstype, flags, *data ? data : NULL) == 0) {
		/* A bind mount ignores MS_RDONLY until remounted. */
		if ((flags & MS_BIND) && (flags & MS_RDONLY) &&
		    mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0)
			fatal("remount %s read-only: %s", target, strerror(errno));
		return;
	}
	if (nofail)
		say("mount %s on %s (%s): %s", source, target, fstype, strerror(errno));
	else
		fatal("mount %s on %s (%s): %s", source, target, fstype, strerror(errno));
}

static void do_insmod(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fatal("insmod %s: %s", path, strerror(errno));
	if (syscall(SYS_finit_module, fd, "", MODULE_INIT_COMPRESSED_FILE) != 0 && errno != EEXIST)
		fatal("insmod %s: %s", path, strerror(errno));
	close(fd);
}

/* The /dev node of the virtio serial port named NAME; the port's name can arrive from the
 * host a little after the device, so look again until PORT_WAIT_MS have passed. */
static int open_port(const char *name)
{
	for (int waited = 0; waited < PORT_WAIT_MS; waited += 10) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char path[512], buf[128] = "";
			size_t len = 0;
			char *content;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
			content = read_file(path, &len);
			if (content) {
				snprintf(buf, sizeof(buf), "%.*s", (int)len, content);
				free(content);
			}
			buf[strcspn(buf, "\n")] = '\0';
			if (!strcmp(buf, name)) {
				int fd;

				snprintf(path, sizeof(path), "/dev/%s", e->d_name);
				fd = open(path, O_RDWR | O_CLOEXEC);
				closedir(d);
				if (fd < 0)
					fatal("open %s: %s", path, strerror(errno));
				return fd;
			}
		}
		if (d)
			closedir(d);
		usleep(10000);
	}
	fatal("no virtio port named %s", name);
	return -1;
}

static void loopback_up(void)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
		fatal("loopback: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
		fatal("loopback up: %s", strerror(errno));
	close(s);
}

struct job {
	char **argv, **envp;
	size_t argc, envc;
	const char *cwd;
};

static void push(char ***v, size_t *n, char *s)
{
	*v = realloc(*v, (*n + 2) * sizeof(char *));
	if (!*v)
		fatal("out of memory");
	(*v)[(*n)++] = s;
	(*v)[*n] = NULL;
}

/* Run the job file's set-up records in order and collect the command. */
static void run_setup(char *buf, size_t len, struct job *job)
{
	if (len < sizeof(JOB_MAGIC) || memcmp(buf, JOB_MAGIC, sizeof(JOB_MAGIC)))
		fatal("the job file does not start with \"%s\"", JOB_MAGIC);

	for (size_t i = sizeof(JOB_MAGIC); i < len;) {
		char *rec = buf + i, *f[5];
		int want;

		i += strnlen(rec, len - i) + 1;
		want = !strcmp(rec, "mount") ? 5 : !strcmp(rec, "symlink") ? 2 :
		       !strcmp(rec, "mkdir") ? 2 : 1;
		for (int k = 0; k < want; k++) {
			if (i >= len)
				fatal("job record %s is truncated", rec);
			f[k] = buf + i;
			i += strnlen(buf + i, len - i) + 1;
		}
		if (!strcmp(rec, "mount"))
			do_mount(f);
		else if (!strcmp(rec, "symlink")) {
			if (symlink(f[0], f[1]) != 0 && errno != EEXIST)
				say("symlink %s: %s", f[1], strerror(errno));
		} else if (!strcmp(rec, "mkdir")) {
			mkdir_p(f[0]);
			if (chmod(f[0], (mode_t)strtoul(f[1], NULL, 8)) != 0)
				say("mkdir %s: %s", f[0], strerror(errno));
		} else if (!strcmp(rec, "insmod"))
			do_insmod(f[0]);
		else if (!strcmp(rec, "hostname")) {
			if (sethostname(f[0], strlen(f[0])) != 0)
				say("hostname: %s", strerror(errno));
		} else if (!strcmp(rec, "arg"))
			push(&job->argv, &job->argc, f[0]);
		else if (!strcmp(rec, "env"))
			push(&job->envp, &job->envc, f[0]);
		else if (!strcmp(rec, "cwd"))
			job->cwd = f[0];
		else
			fatal("unknown job record %s", rec);
	}
	if (!job->argc)
		fatal("the job has no command");
	if (!job->envp)
		push(&job->envp, &job->envc, "PATH=/usr/sbin:/usr/bin:/sbin:/bin");
}

static pid_t start_command(const struct job *job, int out[2], int err[2], const sigset_t *mask)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	sigprocmask(SIG_SETMASK, mask, NULL);
	setsid();
	int null = open("/dev/null", O_RDONLY);

	dup2(null, 0);
	dup2(out[1], 1);
	dup2(err[1], 2);
	if (job->cwd && chdir(job->cwd) != 0) {
		dprintf(2, "lab vm: cannot change to %s: %s\n", job->cwd, strerror(errno));
		_exit(125);
	}
	environ = job->envp; /* execvp searches the PATH of the new environment */
	execvp(job->argv[0], job->argv);
	dprintf(2, "lab vm: %s: %s\n", job->argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

/* Relay what is readable on FD as frames of TYPE; return 0 at end of file. */
static int relay(int fd, char type)
{
	static char buf[65536];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n > 0) {
		frame(type, buf, (size_t)n);
		return 1;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct job job = { 0 };
	struct utsname uts;
	struct timespec up;
	char msg[512];
	size_t len;
	char *buf;
	int out[2], err[2], sfd, status = 0, done = 0;
	sigset_t chld, old;
	pid_t child;

	if (argc < 2)
		fatal("usage: lab-vm-init JOB (give the job after \"--\" on the kernel command line)");
	buf = read_file(argv[1], &len);
	if (!buf)
		fatal("cannot read the job file %s: %s", argv[1], strerror(errno));
	run_setup(buf, len, &job);

	ctl = open_port(CTL_PORT_NAME);
	for (size_t i = 0; i < early_len; i += strlen(early_log + i) + 1)
		frame('L', early_log + i, strlen(early_log + i));
	loopback_up();

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		fatal("signalfd/pipe: %s", strerror(errno));

	uname(&uts);
	clock_gettime(CLOCK_BOOTTIME, &up);
	snprintf(msg, sizeof(msg), "%ld.%03ld %s", (long)up.tv_sec, up.tv_nsec / 1000000,
		 uts.release);
	frame('R', msg, strlen(msg));

	child = start_command(&job, out, err, &old);
	if (child < 0)
		fatal("fork: %s", strerror(errno));
	close(out[1]);
	close(err[1]);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);

	/* Relay until the command has exited and every process holding the pipes is gone: when
	 * the command exits, whatever it left running is killed, as at the end of a VM anyway. */
	struct pollfd p[3] = { { .fd = sfd, .events = POLLIN }, { .fd = out[0], .events = POLLIN },
			       { .fd = err[0], .events = POLLIN } };
	while (p[1].fd >= 0 || p[2].fd >= 0 || !done) {
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			fatal("poll: %s", strerror(errno));
		if (p[0].revents) {
			struct signalfd_siginfo si;
			int st;
			pid_t pid;

			while (read(sfd, &si, sizeof(si)) > 0)
				;
			while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
				if (pid == child && !done) {
					status = st;
					done = 1;
					kill(-1, SIGKILL);
				}
			}
		}
		for (int k = 1; k <= 2; k++) {
			if (p[k].fd >= 0 && p[k].revents && !relay(p[k].fd, k == 1 ? 'O' : 'E')) {
				close(p[k].fd);
				p[k].fd = -1;
			}
		}
	}

	if (WIFSIGNALED(status))
		snprintf(msg, sizeof(msg), "signal %d", WTERMSIG(status));
	else
		snprintf(msg, sizeof(msg), "exit %d", WEXITSTATUS(status));
	frame('S', msg, strlen(msg));
	wait_for_ack();
	power_off();
	return 0;
}
