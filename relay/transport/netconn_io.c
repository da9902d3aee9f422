/*
 * netconn_io.c — the bytes of a framed connection (netconn.h): frames queued
 * and written as the socket takes them, bytes read and handed out frame by
 * frame once whole and checked (wire.h), and the error frame a close sends.
 * The connection's state is in netconn_internal.h.
 */
#include "netconn_internal.h"

#include "pgferry/wire.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- output --------------------------------------------------------------------- */

size_t netconn_queued_bytes(const netconn_t *c)
{
	return c->out.len - c->out_off;
}

/* Writes what it can; returns false if the connection died. */
bool nc_flush(netconn_t *c)
{
	while (c->out_off < c->out.len) {
		size_t n = c->out.len - c->out_off;
		ssize_t w;
		if (n > (1u << 30))
			n = 1u << 30;
		if (c->ssl) {
			int r;
			ERR_clear_error();
			r = SSL_write(c->ssl, c->out.data + c->out_off, (int)n);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
					break;
				nc_fail_text(c, PGF_E_IO, "TLS write to the peer failed%s", "");
				return false;
			}
			w = r;
		} else {
			w = write(c->fd, c->out.data + c->out_off, n);
			if (w < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				nc_fail_text(c, PGF_E_IO, "write to the peer failed: %s",
				             strerror(errno));
				return false;
			}
		}
		c->out_off += (size_t)w;
	}
	if (c->out_off == c->out.len) {
		buf_reset(&c->out);
		c->out_off = 0;
	} else if (c->out_off > (1u << 20) && c->out_off > c->out.len / 2) {
		memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
		c->out.len -= c->out_off;
		c->out_off = 0;
	}
	return true;
}

int netconn_send(netconn_t *c, uint8_t type, const void *payload, size_t len, pgf_error_t *err)
{
	if (c == NULL || c->state == NC_DEAD)
		return error_set(err, PGF_E_IO, "the connection is closed");
	if ((int64_t)len > c->max_frame)
		return error_set(err, PGF_E_PROTOCOL,
		                 "%s frame of %zu bytes exceeds max_frame_bytes",
		                 wire_type_name(type), len);
	wire_append_header(&c->out, type, (uint32_t)len);
	buf_append(&c->out, payload, len);
	if (buf_failed(&c->out))
		return error_set(err, PGF_E_MEMORY, "out of memory queueing %zu bytes", len);
	if (c->state != NC_OPEN)
		return PGF_OK; /* goes out once open */
	nc_enter(c);
	if (nc_flush(c))
		nc_watch_open(c);
	nc_leave(c);
	return PGF_OK;
}

void netconn_pause(netconn_t *c, bool pause)
{
	if (c == NULL || c->state != NC_OPEN)
		return;
	c->paused = pause;
	nc_watch_open(c);
	/* frames read before the pause wait in the buffer: no new byte may
	 * come to hand them out */
	if (!pause && ((c->ssl && SSL_pending(c->ssl) > 0) || c->in.len > c->in_off))
		ev_feed_event(c->loop, &c->io, EV_READ);
}

void netconn_close(netconn_t *c, uint16_t code, const char *message)
{
	if (c == NULL || c->state == NC_DEAD)
		return;
	if (code != 0 && c->state == NC_OPEN) {
		wire_error_t e;
		buf_t b;
		e.code = code;
		snprintf(e.message, sizeof(e.message), "%s", message ? message : "");
		buf_init(&b);
		wire_encode_error(&e, &b);
		if (c->peer_v1)
			wire_append_header_v1(&c->out, WIRE_ERROR, (uint32_t)b.len);
		else
			wire_append_header(&c->out, WIRE_ERROR, (uint32_t)b.len);
		buf_append(&c->out, b.data, b.len);
		buf_free(&b);
		nc_enter(c);
		nc_flush(c); /* best effort: the peer learns why */
		if (!nc_leave(c))
			return;
	}
	nc_kill(c);
}

/* ---- input ---------------------------------------------------------------------- */

/*
 * A first frame that fails its check may come from a peer of protocol 1
 * (no check in its headers): say so instead of "damaged", and tell it in
 * its own framing. Returns false to wait for the rest of an old sink's
 * error frame, whose message is the most useful thing to report.
 */
static bool nc_refuse_v1(netconn_t *c, const uint8_t *h, size_t avail, pgf_error_t *err)
{
	uint8_t type;
	uint32_t len;
	wire_error_t e;

	if (c->frames_in > 0 || !wire_header_is_v1(h, avail, c->max_frame, &type, &len))
		return true;
	if (type == WIRE_ERROR && avail - WIRE_V1_HEADER_LEN < len)
		return false;
	c->peer_v1 = true;
	error_set(err, PGF_E_PROTOCOL,
	          "the peer speaks wire protocol 1 (an older pgferry); this one speaks %d",
	          WIRE_PROTOCOL_VERSION);
	if (type == WIRE_ERROR &&
	    wire_decode_error(h + WIRE_V1_HEADER_LEN, len, &e, &(pgf_error_t){0}) == PGF_OK)
		error_detail(err, "Its first frame was an error in protocol 1's framing: %s",
		             e.message);
	else
		error_detail(err,
		             "Its first frame was a %s in protocol 1's framing (no header check).",
		             wire_type_name(type));
	error_hint(err, "Run the same pgferry version on both sides. Nothing was streamed; the "
	                "source retries and its slot keeps everything until then.");
	return true;
}

/* Hands out every complete frame in the buffer. */
static bool nc_parse_frames(netconn_t *c)
{
	while (c->in.len - c->in_off >= WIRE_HEADER_LEN) {
		const uint8_t *h = (const uint8_t *)c->in.data + c->in_off;
		uint8_t type;
		uint32_t len;
		pgf_error_t err;

		if (wire_check_header(h, c->in_consumed + c->in_off, c->max_frame, &type, &len,
		                      &err) != PGF_OK) {
			if (!nc_refuse_v1(c, h, c->in.len - c->in_off, &err))
				break;
			error_where(&err, "%s", c->peer);
			if (c->cb.bad_frame)
				c->cb.bad_frame(c, c->cb.arg, &err);
			nc_fail(c, &err);
			return false;
		}
		if (c->in.len - c->in_off - WIRE_HEADER_LEN < len)
			break;
		c->in_off += WIRE_HEADER_LEN + len;
		c->frames_in++;
		if (c->cb.frame)
			c->cb.frame(c, c->cb.arg, type, h + WIRE_HEADER_LEN, len);
		if (c->state == NC_DEAD || c->paused)
			return c->state != NC_DEAD;
	}
	/* keep the buffer small: move the partial frame to the front */
	if (c->in_off > 0) {
		memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
		c->in.len -= c->in_off;
		c->in_consumed += c->in_off;
		c->in_off = 0;
	}
	/* a large frame grew the buffer: give it back once it has passed */
	if (c->in.cap > IN_KEEP && c->in.len < IN_KEEP / 2)
		buf_shrink(&c->in, IN_KEEP);
	return true;
}

void nc_read(netconn_t *c)
{
	/* complete frames left by a pause go first */
	if (!c->paused && c->in_off > 0 && !nc_parse_frames(c))
		return;
	for (;;) {
		ssize_t n;
		if (c->paused)
			return;
		if (!buf_reserve(&c->in, READ_CHUNK)) {
			nc_fail_text(c, PGF_E_MEMORY, "out of memory reading from the peer%s", "");
			return;
		}
		if (c->ssl) {
			int r;
			ERR_clear_error();
			r = SSL_read(c->ssl, c->in.data + c->in.len, READ_CHUNK);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return;
				if (e == SSL_ERROR_ZERO_RETURN)
					nc_fail_text(c, PGF_E_IO,
					             "the peer closed the connection%s", "");
				else {
					char why[300];
					tls_describe_failure(c->ssl, why, sizeof(why));
					nc_fail_text(c, PGF_E_TLS, "TLS read failed: %s", why);
				}
				return;
			}
			n = r;
		} else {
			n = read(c->fd, c->in.data + c->in.len, READ_CHUNK);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n < 0) {
				nc_fail_text(c, PGF_E_IO, "read from the peer failed: %s",
				             strerror(errno));
				return;
			}
			if (n == 0) {
				nc_fail_text(c, PGF_E_IO, "the peer closed the connection%s", "");
				return;
			}
		}
		c->in.len += (size_t)n;
		c->last_input = ev_now(c->loop);
		if (!nc_parse_frames(c))
			return;
	}
}
