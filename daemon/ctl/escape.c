// SPDX-License-Identifier: MIT
/*
 * cowguardctl: strings from elsewhere, made safe for a terminal, a JSON
 * document or a Prometheus label.
 *
 * A pin's consumer is named by the client (any 15 bytes), and cowguardctl
 * runs as root on an operator's terminal: written raw, an escape sequence
 * in that name could recolour, move or hide output, set the window title,
 * or on some terminals answer back as typed input.  So nothing a client
 * sends reaches a terminal unescaped, and the machine formats stay valid
 * UTF-8 whatever the bytes were.
 */
#include <stdio.h>
#include <string.h>
#include <wctype.h>

#include "ctl.h"

/* ---- UTF-8 ---------------------------------------------------------------- */

/* The range a sequence's second byte must fall in, by its lead byte. */
static bool second_ok(unsigned char lead, unsigned char b)
{
	if (lead == 0xe0)
		return b >= 0xa0 && b <= 0xbf;	/* no overlong 3-byte form */
	if (lead == 0xed)
		return b >= 0x80 && b <= 0x9f;	/* no surrogates */
	if (lead == 0xf0)
		return b >= 0x90 && b <= 0xbf;	/* no overlong 4-byte form */
	if (lead == 0xf4)
		return b >= 0x80 && b <= 0x8f;	/* nothing past U+10FFFF */
	return b >= 0x80 && b <= 0xbf;
}

size_t ctl_utf8_next(const char *str, size_t n, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len;
	uint32_t v;

	if (!n)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, v = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, v = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, v = s[0] & 0x07;
	else
		return 0;	/* a continuation byte, 0xc0, 0xc1, 0xf5.. */
	if (n < len || !second_ok(s[0], s[1]))
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	*cp = v;
	return len;
}

/* ---- terminal ------------------------------------------------------------- */

/*
 * Characters iswprint() may pass (it does for several in glibc's tables)
 * that show nothing or reorder what follows: the soft hyphen, zero-width
 * characters, the bidi marks, embeddings, overrides and isolates (the
 * "Trojan Source" characters), line and paragraph separators, the BOM,
 * interlinear annotations and tag characters.
 */
static bool invisible(uint32_t cp)
{
	return cp == 0xad || cp == 0x61c || cp == 0x180e ||
	       (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff ||
	       (cp >= 0xfff9 && cp <= 0xfffb) || (cp >= 0xe0000 && cp <= 0xe007f);
}

/* Whether the n-byte sequence at s (code point cp) may go out as it is. */
static bool shows_as_itself(uint32_t cp, size_t n, bool utf8)
{
	if (n == 1)
		return cp >= 0x20 && cp < 0x7f && cp != '\\';
	/*
	 * In another charset the bytes of a UTF-8 sequence would be taken
	 * one by one, and 0x80-0x9f are C1 controls (CSI is 0x9b) there.
	 */
	return utf8 && iswprint((wint_t)cp) && !invisible(cp);
}

/* Append piece to buf if it fits whole (keeping room for the NUL). */
static bool append(char *buf, size_t len, size_t *pos, const char *piece,
		   size_t n)
{
	if (*pos + n >= len)
		return false;
	memcpy(buf + *pos, piece, n);
	*pos += n;
	return true;
}

/* The escaped form of the n bytes at s into piece: \\ or \xNN each. */
static size_t escaped(const char *s, size_t n, char *piece)
{
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)s[i];

		if (b == '\\')
			out += (size_t)sprintf(piece + out, "\\\\");
		else
			out += (size_t)sprintf(piece + out, "\\x%02x", b);
	}
	return out;
}

const char *ctl_text_safe(const char *s, bool utf8, char *buf, size_t len)
{
	size_t pos = 0, left = strlen(s);

	if (!len)
		return buf;
	while (left) {
		char piece[16];
		uint32_t cp = 0;
		size_t n = ctl_utf8_next(s, left, &cp), out;

		if (n && shows_as_itself(cp, n, utf8)) {
			memcpy(piece, s, n);
			out = n;
		} else {
			n = n ? n : 1;	/* an invalid byte goes alone */
			out = escaped(s, n, piece);
		}
		if (!append(buf, len, &pos, piece, out))
			break;
		s += n;
		left -= n;
	}
	buf[pos] = 0;
	return buf;
}

/* ---- JSON ----------------------------------------------------------------- */

/*
 * Every control character (C0, DEL, C1) is written \u00XX, and so are the
 * line and paragraph separators, which JavaScript took as line ends.
 *
 * A byte that is not valid UTF-8 becomes U+FFFD (written \ufffd), one per
 * byte.  Not \u00XX: that would decode as the character U+00XX, the same
 * as a client that sent that character properly encoded (byte 0xe9 and
 * "é" would read alike), and a JSON reader could never tell it was not
 * text.  U+FFFD says exactly that; the text output shows the bytes.
 */
void ctl_json_escape(FILE *f, const char *s)
{
	size_t left = strlen(s);

	while (left) {
		uint32_t cp = 0;
		size_t n = ctl_utf8_next(s, left, &cp);

		if (!n) {
			fputs("\\ufffd", f);
			n = 1;
		} else if (cp == '"' || cp == '\\') {
			fprintf(f, "\\%c", (char)cp);
		} else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
			   cp == 0x2028 || cp == 0x2029) {
			fprintf(f, "\\u%04x", (unsigned)cp);
		} else {
			fwrite(s, 1, n, f);
		}
		s += n;
		left -= n;
	}
}

/* ---- Prometheus ----------------------------------------------------------- */

/*
 * The text format escapes three characters in a label value: backslash,
 * double quote and newline.  Values must be UTF-8: an invalid byte
 * becomes U+FFFD, as in JSON (the format has no byte escape).
 */
void ctl_prom_escape(FILE *f, const char *s)
{
	size_t left = strlen(s);

	while (left) {
		uint32_t cp = 0;
		size_t n = ctl_utf8_next(s, left, &cp);

		if (!n) {
			fputs("\xef\xbf\xbd", f);
			n = 1;
		} else if (cp == '\\' || cp == '"') {
			fprintf(f, "\\%c", (char)cp);
		} else if (cp == '\n') {
			fputs("\\n", f);
		} else {
			fwrite(s, 1, n, f);
		}
		s += n;
		left -= n;
	}
}
