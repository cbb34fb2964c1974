// SPDX-License-Identifier: MIT
/*
 * The image reader trusts nothing: an image cut short, one whose snapshot
 * never finished, one of another version, a byte changed anywhere in its
 * header, index or pages, or bytes appended, is refused with the error
 * and a sentence that say which (docs/image-format.md); a sound one is
 * read back whole.  cowguardctl image says the same and exits 2.  The
 * checksum is CRC-32C, checked against its known answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"
#include "snapshot-util.h"

#define LEN (512 * KIB)

/* A sound image of LEN bytes of 4 KiB pages, one in 4 a hole, in a file. */
static int sound_image(void)
{
	char *p = h_map(H_4K, LEN, 'c');
	struct cg *cg = h_open(H_EMBEDDED);
	int fd = su_tmpfile();

	ck_assert(p);
	for (size_t off = 0; off < LEN; off += 4 * PG)
		ck_assert_int_eq(madvise(p + off, PG, MADV_DONTNEED), 0);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	ck_assert_int_eq(cg_snapshot(cg, fd, 0, NULL, 0), 0);
	cg_close(cg);
	munmap(p, LEN);
	return fd;
}

/* A copy of the image in src, changed by fn, in a new file. */
static int copy_image(int src)
{
	off_t len = lseek(src, 0, SEEK_END);
	char *buf = malloc((size_t)len);
	int fd = su_tmpfile();

	ck_assert(buf);
	ck_assert_int_eq(pread(src, buf, (size_t)len, 0), len);
	ck_assert_int_eq(pwrite(fd, buf, (size_t)len, 0), len);
	free(buf);
	return fd;
}

static void flip(int fd, off_t off)
{
	unsigned char b;

	ck_assert_int_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x20;
	ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
}

/* Open, then read every run: the first refusal, 0 if none. */
static int read_whole(int fd, char *why, size_t whylen)
{
	struct cg__img img;
	int ret = cg__img_open(&img, fd);

	if (!ret) {
		ret = cg__img_verify(&img);
		cg__img_close(&img);
	}
	snprintf(why, whylen, "%s", img.err);
	return ret;
}

static void expect_refused(int fd, int err, const char *words)
{
	char why[256];
	int ret = read_whole(fd, why, sizeof(why));

	ck_assert_msg(ret == err, "%s: got %d (%s), want %d", h_case_name(), ret,
		      why, err);
	ck_assert_msg(strstr(why, words), "refused saying '%s', not '%s'", why,
		      words);
}

static struct cg__img_header header_of(int fd)
{
	struct cg__img_header h;

	ck_assert_int_eq(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	return h;
}

START_TEST(a_sound_image_is_read_back_whole)
{
	int fd = sound_image();
	char why[256];

	ck_assert_msg(read_whole(fd, why, sizeof(why)) == 0, "%s", why);
	close(fd);
}
END_TEST

START_TEST(a_truncated_image_is_refused)
{
	int src = sound_image(), fd = copy_image(src);
	off_t len = lseek(fd, 0, SEEK_END);

	ck_assert_int_eq(ftruncate(fd, len - 1), 0);
	expect_refused(fd, -ENODATA, "truncated");
	ck_assert_int_eq(ftruncate(fd, 100), 0);
	expect_refused(fd, -ENODATA, "truncated");
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	expect_refused(fd, -ENOEXEC, "not a cowguard");
	close(fd);
	close(src);
}
END_TEST

START_TEST(an_unfinished_image_is_refused)
{
	int src = sound_image(), fd = copy_image(src);
	char zero[CG__IMG_HEADER_SIZE] = { 0 };

	/* What a snapshot that failed leaves: no header. */
	ck_assert_int_eq(pwrite(fd, zero, sizeof(zero), 0), (ssize_t)sizeof(zero));
	expect_refused(fd, -ENOEXEC, "did not finish");
	close(fd);
	close(src);
}
END_TEST

START_TEST(another_version_is_refused)
{
	int src = sound_image(), fd = copy_image(src);
	struct cg__img_header h = header_of(fd);

	h.version = CG__IMG_VERSION + 1;
	ck_assert_int_eq(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	expect_refused(fd, -EPROTONOSUPPORT, "version");
	close(fd);
	close(src);
}
END_TEST

START_TEST(bytes_appended_are_refused)
{
	int src = sound_image(), fd = copy_image(src);

	ck_assert_int_eq(pwrite(fd, "x", 1, lseek(fd, 0, SEEK_END)), 1);
	expect_refused(fd, -EBADMSG, "after the end");
	close(fd);
	close(src);
}
END_TEST

/* Every byte of the file, changed alone, is caught (a sample of pages). */
START_TEST(a_byte_changed_anywhere_is_refused)
{
	int src = sound_image();
	struct cg__img_header h = header_of(src);
	off_t len = lseek(src, 0, SEEK_END), off;
	unsigned tried = 0;

	for (off = 0; off < len; off += off < CG__IMG_HEADER_SIZE ? 97
				   : off < (off_t)h.index_off ? 4093 : 7) {
		int fd = copy_image(src);
		char why[256];
		int ret;

		flip(fd, off);
		ret = read_whole(fd, why, sizeof(why));
		ck_assert_msg(ret == -EBADMSG || ret == -ENOEXEC ||
				      ret == -EPROTONOSUPPORT || ret == -ENODATA,
			      "byte %lld changed: read %d (%s)", (long long)off,
			      ret, why);
		close(fd);
		tried++;
	}
	printf("%u single-byte changes over %lld bytes, each refused\n", tried,
	       (long long)len);
	close(src);
}
END_TEST

static int run_ctl_image(int fd, char *out, size_t outlen)
{
	char path[64], cmd[512];
	FILE *f;
	size_t n;
	int status;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	snprintf(cmd, sizeof(cmd), "%s/cowguardctl image %s 2>&1",
		 getenv("CG_BUILDDIR") ? getenv("CG_BUILDDIR") : "build", path);
	f = popen(cmd, "r");
	ck_assert(f);
	n = fread(out, 1, outlen - 1, f);
	out[n] = 0;
	status = pclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(cowguardctl_image_checks_an_image)
{
	int src = sound_image(), fd = copy_image(src);
	struct cg__img_header h = header_of(src);
	char out[4096];

	ck_assert_int_eq(run_ctl_image(src, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "checksums good"), "%s", out);
	flip(fd, (off_t)h.data_off + 5);
	ck_assert_int_eq(run_ctl_image(fd, out, sizeof(out)), 2);
	ck_assert_msg(strstr(out, "checksum mismatch"), "%s", out);
	close(fd);
	close(src);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a corrupt or truncated image is refused");
	TCase *tc = tcase_create("image");

	h_timeout(tc, 120);
	h_add(tc, a_sound_image_is_read_back_whole);
	h_add(tc, a_truncated_image_is_refused);
	h_add(tc, an_unfinished_image_is_refused);
	h_add(tc, another_version_is_refused);
	h_add(tc, bytes_appended_are_refused);
	h_add(tc, a_byte_changed_anywhere_is_refused);
	h_add(tc, cowguardctl_image_checks_an_image);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
