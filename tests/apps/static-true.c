// SPDX-License-Identifier: MIT
/* A static binary: no LD_PRELOAD reaches it (cowguard-run --check says so). */
int main(void)
{
	return 0;
}
