/* SPDX-License-Identifier: MIT */
/*
 * The snapshot image: what cg_snapshot() writes and what restore and
 * cowguardctl read (docs/image-format.md).  A layer of its own under the
 * handle side, like the wire format: it includes nothing above it.
 *
 *   0          header, CG__IMG_HEADER_SIZE bytes, written last: an image
 *              cut short before the end has none and is refused
 *   data_off   the saved runs' bytes, each page-aligned, in saving order
 *   index_off  the region table (nregions records), then the run index
 *              (nruns records, by address, each inside its region; in an
 *              incremental image, kept runs too: no bytes, the parent's)
 *   file_len   = index_off + index_len: nothing after
 *
 * Integers are in the byte order of the machine that wrote the image
 * (little-endian everywhere cowguard runs: the magic tells).  The header,
 * the index and every run carry a CRC-32C.  Memory a region holds that no
 * run covers was a hole at the snapshot's instant: zeros.
 */
/* Header flags. */
#define CG__IMG_INCREMENTAL (1u << 0)	/* kept runs are the parent's */
/* Run flags. */
#define CG__IMG_KEPT (1u << 0)		/* unwritten since the parent */
#ifndef CG_IMAGE_H
#define CG_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define CG__IMG_MAGIC "CGSNAP\r\n"	/* \r\n: a text-mode copy breaks it */
#define CG__IMG_VERSION 1
#define CG__IMG_HEADER_SIZE 4096
/* A run's bytes at most: a 1 GiB hugetlb page is saved in 512 runs. */
#define CG__IMG_RUN_MAX (2u << 20)

struct cg__img_header {
	char magic[8];
	uint32_t version;
	uint32_t header_len;	/* sizeof(struct cg__img_header) */
	uint32_t page_size;	/* 4096 */
	uint32_t flags;		/* CG__IMG_INCREMENTAL */
	int64_t pid;		/* the process, as it saw itself */
	uint64_t created_ns;	/* CLOCK_REALTIME when begin returned */
	uint64_t nregions, nruns;
	uint64_t data_off, data_len;
	uint64_t index_off, index_len;
	uint64_t file_len;
	uint64_t saved_bytes;	/* the saved runs' lengths, summed */
	uint64_t id;		/* this image's, random */
	uint64_t parent_id;	/* incremental: the image it builds on */
	uint32_t index_crc;	/* of the index_len bytes at index_off */
	uint32_t header_crc;	/* of this record, up to this field */
};

struct cg__img_region {
	uint64_t start, len;
	uint32_t kind;		/* enum cg_page_kind */
	uint32_t pad;
	uint64_t first_run, nruns;	/* its runs in the run index */
};

struct cg__img_run {
	uint64_t addr, len;	/* memory: page-aligned, len <= RUN_MAX saved */
	uint64_t off;		/* in the file, within the data; kept: 0 */
	uint32_t crc;		/* of its len bytes; kept: 0 */
	uint32_t flags;		/* CG__IMG_KEPT: no bytes, as in the parent */
};

/*
 * All of len bytes at off (lib/image/io.c): 0 or -errno; a read that
 * meets the end of the file first, -ENODATA.
 */
int cg__img_pread(int fd, void *buf, size_t len, uint64_t off);
int cg__img_pwrite(int fd, const void *buf, size_t len, uint64_t off);

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (0 to start). */
uint32_t cg__crc32c(uint32_t crc, const void *buf, size_t len);
/* The same by table alone, whatever the CPU has (for tests). */
uint32_t cg__crc32c_table(uint32_t crc, const void *buf, size_t len);

/*
 * An image opened for reading: header and index checked, loaded.
 * open returns 0 or -errno with err set to a sentence saying why:
 * -ENOEXEC not an image (or one whose writer never finished), -EPROTONOSUPPORT
 * another version, -ENODATA shorter than its header says, -EBADMSG a
 * checksum or a record that does not add up, -ENOMEM, or a read's errno.
 * read_run reads run i into buf (its len bytes) and checks its CRC
 * (-EBADMSG; a kept run has no bytes: -EINVAL).  verify reads every saved
 * run.  close frees.
 */
struct cg__img {
	int fd;
	struct cg__img_header h;
	struct cg__img_region *regions;
	struct cg__img_run *runs;
	char err[200];
};

int cg__img_open(struct cg__img *img, int fd);
int cg__img_read_run(struct cg__img *img, uint64_t i, void *buf);
int cg__img_verify(struct cg__img *img);
void cg__img_close(struct cg__img *img);

#endif
