// SPDX-License-Identifier: MIT
/*
 * CRC-32C, the checksum of the snapshot image: the CPU's instruction where
 * it has one (x86-64 SSE4.2, about 8 bytes a cycle), a table otherwise.
 * Both give the same value; tests/test-a-corrupt-or-truncated-image-is-refused.c
 * checks it against the known answer for "123456789".
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "image.h"

#define POLY 0x82f63b78u	/* Castagnoli, reflected */

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[i] = c;
	}
}

static uint32_t crc_table(uint32_t crc, const unsigned char *p, size_t len)
{
	pthread_once(&table_once, table_init);
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
crc_sse42(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t c = crc;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;

		memcpy(&w, p, sizeof(w));
		c = __builtin_ia32_crc32di(c, w);
	}
	crc = (uint32_t)c;
	for (; len; p++, len--)
		crc = __builtin_ia32_crc32qi(crc, *p);
	return crc;
}

static bool have_sse42(void)
{
	return __builtin_cpu_supports("sse4.2");
}
#else
static uint32_t crc_sse42(uint32_t crc, const unsigned char *p, size_t len)
{
	return crc_table(crc, p, len);
}

static bool have_sse42(void)
{
	return false;
}
#endif

uint32_t cg__crc32c(uint32_t crc, const void *buf, size_t len)
{
	crc = ~crc;
	crc = have_sse42() ? crc_sse42(crc, buf, len) : crc_table(crc, buf, len);
	return ~crc;
}
