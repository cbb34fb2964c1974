// SPDX-License-Identifier: MIT
/*
 * A daemon's start: every descriptor past stderr closed, then a file of
 * its own opened and dup2()ed onto the numbers 3 to 1000, as a program
 * that hands out descriptors would have them.  One line written, the file
 * kept open to the end: whatever else writes to those numbers at exit
 * writes into it.
 * Usage: reopens-every-descriptor FILE
 */
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int fd;

	if (argc != 2)
		return 2;
	for (int i = 3; i < 1024; i++)
		close(i);
	fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return 1;
	for (int i = 3; i <= 1000; i++)
		if (i != fd && dup2(fd, i) != i)
			return 1;
	return write(fd, "data\n", 5) == 5 ? 0 : 1;
}
