// SPDX-License-Identifier: MIT
/*
 * CRC-32C, the image's checksum, gives the same value every way: the
 * known answer for "123456789"; the CPU's instruction (three streams
 * joined, lib/image/crc32c.c) as the table at every length round the
 * stride of three 4 KiB blocks and from every alignment; and in parts as
 * in one go.  An image written on one machine is checked on another.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "image/image.h"

#define STRIDE (3 * 4096)

static unsigned char *random_bytes(size_t len, unsigned seed)
{
	unsigned char *b = malloc(len);

	ck_assert(b);
	srand(seed);
	for (size_t i = 0; i < len; i++)
		b[i] = (unsigned char)rand();
	return b;
}

START_TEST(crc32c_gives_the_known_answer)
{
	ck_assert_uint_eq(cg__crc32c(0, "123456789", 9), 0xe3069283);
	ck_assert_uint_eq(cg__crc32c_table(0, "123456789", 9), 0xe3069283);
}
END_TEST

START_TEST(the_instruction_gives_what_the_table_gives_at_every_length)
{
	static const size_t lens[] = { 0, 1, 7, 8, 9, STRIDE - 1, STRIDE,
				       STRIDE + 1, 2 * STRIDE + 13,
				       100000, (1 << 20) + 3 };
	size_t max = (1 << 20) + 3 + 8;
	unsigned char *b = random_bytes(max, 1);

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (size_t off = 0; off < 8; off++)
			ck_assert_msg(cg__crc32c(0x1234567, b + off, lens[i]) ==
				      cg__crc32c_table(0x1234567, b + off, lens[i]),
				      "%zu bytes from offset %zu differ", lens[i], off);
	free(b);
}
END_TEST

START_TEST(a_crc_in_parts_is_the_crc_in_one_go)
{
	size_t len = 5 * STRIDE + 77;
	unsigned char *b = random_bytes(len, 2);
	uint32_t whole = cg__crc32c(0, b, len);

	for (size_t cut = 0; cut <= len; cut += 997)
		ck_assert_uint_eq(cg__crc32c(cg__crc32c(0, b, cut), b + cut,
					     len - cut), whole);
	free(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("crc32c gives the same value every way");
	TCase *tc = tcase_create("crc32c");

	h_timeout(tc, 60);
	h_add(tc, crc32c_gives_the_known_answer);
	h_add(tc, the_instruction_gives_what_the_table_gives_at_every_length);
	h_add(tc, a_crc_in_parts_is_the_crc_in_one_go);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
