/*   SPDX-License-Identifier: BSD-3-Clause
 *   Copyright (C) 2026 The bdev_ozone authors.
 *   All rights reserved.
 */

/*
 * bdev_ozone RPCs: bdev_ozone_create, bdev_ozone_delete and bdev_ozone_resize, and the
 * deprecated aliases ozone_bdev_create / ozone_bdev_delete (the project's original quick
 * start, which names the URI `ozone_uri`).
 * Owns: the decoder tables (decoded by spdk_json_decode_object), naming the offending
 * parameter when decoding fails, and the JSON-RPC responses.
 * Must never: call the engine, check what the engine checks (URI, geometry, ranges, CPU
 * mask, journal mode, sizes: bdev_ozone_check_opts and the resize pass the engine's own
 * message through), wait for a result (create/delete/resize answer through callbacks on
 * the app thread), or answer a request twice.
 */

#include "spdk/stdinc.h"

#include "bdev_ozone.h"
#include "spdk/json.h"
#include "spdk/jsonrpc.h"
#include "spdk/log.h"
#include "spdk/rpc.h"
#include "spdk/string.h"
#include "spdk/util.h"

#define BDEV_OZONE_RPC_MSGLEN 512

/* ---------------------------------------------------------------------------------------- */
/* Answers */

/*
 * Every error answer with a message goes through here. A message cut to a buffer can end in
 * half a UTF-8 character; SPDK's JSON writer then stops inside the string and the client gets
 * an answer it can never parse, so it waits forever. Drop such a broken tail before sending.
 */
static void
bdev_ozone_rpc_error(struct spdk_jsonrpc_request *request, int code, const char *msg)
{
	char buf[BDEV_OZONE_RPC_MSGLEN];
	size_t len, lead, need;

	snprintf(buf, sizeof(buf), "%s", msg);
	len = strlen(buf);
	lead = len;
	while (lead > 0 && ((unsigned char)buf[lead - 1] & 0xC0) == 0x80 && len - lead < 3) {
		lead--;
	}
	if (lead > 0 && (unsigned char)buf[lead - 1] >= 0xC0) {
		need = (unsigned char)buf[lead - 1] >= 0xF0 ? 4 : (unsigned char)buf[lead - 1] >= 0xE0 ? 3 : 2;
		if (len - (lead - 1) < need) {
			buf[lead - 1] = '\0';
		}
	}
	spdk_jsonrpc_send_error_response(request, code, buf);
}

/* ---------------------------------------------------------------------------------------- */
/* Decoding */

static int
bdev_ozone_decode_opt_u32(const struct spdk_json_val *val, void *out)
{
	struct bdev_ozone_opt_u32 *o = out;

	if (spdk_json_decode_uint32(val, &o->val) != 0) {
		return -1;
	}
	o->set = true;
	return 0;
}

static int
bdev_ozone_decode_opt_u64(const struct spdk_json_val *val, void *out)
{
	struct bdev_ozone_opt_u64 *o = out;

	if (spdk_json_decode_uint64(val, &o->val) != 0) {
		return -1;
	}
	o->set = true;
	return 0;
}

/*
 * spdk_json_decode_object failed on `params`: say which parameter is at fault, from the
 * same decoder table (an unknown key, a missing required one, or one whose value does not
 * decode), so the error names it. `size` is the size of the decoded struct.
 */
static void
bdev_ozone_explain_decode_error(const struct spdk_json_val *params,
				const struct spdk_json_object_decoder *dec, size_t n, size_t size,
				char *msg, size_t msglen)
{
	const struct spdk_json_val *key, *val;
	void *scratch;
	size_t i;
	uint32_t k;
	int rc;

	if (params == NULL) {
		snprintf(msg, msglen, "missing parameters object");
		return;
	}
	if (params->type != SPDK_JSON_VAL_OBJECT_BEGIN) {
		snprintf(msg, msglen, "parameters must be a JSON object");
		return;
	}
	for (k = 1; k <= params->len; k += 1 + spdk_json_val_len(&params[k + 1])) {
		key = &params[k];
		for (i = 0; i < n && !spdk_json_strequal(key, dec[i].name); i++) {
		}
		if (i == n) {
			snprintf(msg, msglen, "unknown parameter '%.*s'", (int)key->len,
				 (const char *)key->start);
			return;
		}
	}
	for (i = 0; i < n; i++) {
		rc = spdk_json_find((struct spdk_json_val *)params, dec[i].name, NULL,
				    (struct spdk_json_val **)&val, SPDK_JSON_VAL_ANY);
		if (rc == -EINVAL) {
			snprintf(msg, msglen, "parameter '%s' given twice", dec[i].name);
			return;
		}
		if (rc != 0) {
			if (!dec[i].optional) {
				snprintf(msg, msglen, "missing required parameter '%s'", dec[i].name);
				return;
			}
			continue;
		}
		scratch = calloc(1, size);
		if (scratch == NULL) {
			break;
		}
		rc = dec[i].decode_func(val, (char *)scratch + dec[i].offset);
		spdk_json_free_object(dec, n, scratch);
		free(scratch);
		if (rc != 0) {
			if (val->type == SPDK_JSON_VAL_STRING || val->type == SPDK_JSON_VAL_NUMBER) {
				snprintf(msg, msglen, "parameter '%s' has a value of the wrong type or "
					 "range: %s%.*s%s", dec[i].name,
					 val->type == SPDK_JSON_VAL_STRING ? "\"" : "",
					 (int)spdk_min(val->len, 64), (const char *)val->start,
					 val->type == SPDK_JSON_VAL_STRING ? "\"" : "");
			} else {
				snprintf(msg, msglen, "parameter '%s' has a value of the wrong type",
					 dec[i].name);
			}
			return;
		}
	}
	snprintf(msg, msglen, "invalid parameters");
}

static bool
bdev_ozone_decode(struct spdk_jsonrpc_request *request, const struct spdk_json_val *params,
		  const struct spdk_json_object_decoder *dec, size_t n, void *out, size_t size)
{
	char msg[BDEV_OZONE_RPC_MSGLEN];

	if (params != NULL && spdk_json_decode_object(params, dec, n, out) == 0) {
		return true;
	}
	bdev_ozone_explain_decode_error(params, dec, n, size, msg, sizeof(msg));
	bdev_ozone_rpc_error(request, SPDK_JSONRPC_ERROR_INVALID_PARAMS, msg);
	return false;
}

/* ---------------------------------------------------------------------------------------- */
/* bdev_ozone_create (alias ozone_bdev_create) */

struct rpc_bdev_ozone_create {
	struct bdev_ozone_create_opts	opts;
	/* The quick start's name for opts.uri. */
	char				*ozone_uri;
};

static const struct spdk_json_object_decoder rpc_bdev_ozone_create_decoders[] = {
	{"name", offsetof(struct rpc_bdev_ozone_create, opts.name), spdk_json_decode_string},
	{"uri", offsetof(struct rpc_bdev_ozone_create, opts.uri), spdk_json_decode_string, true},
	{"ozone_uri", offsetof(struct rpc_bdev_ozone_create, ozone_uri), spdk_json_decode_string, true},
	{"size", offsetof(struct rpc_bdev_ozone_create, opts.size), spdk_json_decode_uint64, true},
	{"block_size", offsetof(struct rpc_bdev_ozone_create, opts.block_size), spdk_json_decode_uint32, true},
	{"chunk_size", offsetof(struct rpc_bdev_ozone_create, opts.chunk_size), spdk_json_decode_uint64, true},
	{"uuid", offsetof(struct rpc_bdev_ozone_create, opts.uuid), spdk_json_decode_string, true},
	{"cpumask", offsetof(struct rpc_bdev_ozone_create, opts.cpumask), spdk_json_decode_string, true},
	{"timeout_ms", offsetof(struct rpc_bdev_ozone_create, opts.timeout_ms), bdev_ozone_decode_opt_u32, true},
	{"workers", offsetof(struct rpc_bdev_ozone_create, opts.workers), bdev_ozone_decode_opt_u32, true},
	{"retry_ms", offsetof(struct rpc_bdev_ozone_create, opts.retry_ms), bdev_ozone_decode_opt_u32, true},
	{"max_inflight_requests", offsetof(struct rpc_bdev_ozone_create, opts.max_inflight_requests), bdev_ozone_decode_opt_u32, true},
	{"max_inflight_bytes", offsetof(struct rpc_bdev_ozone_create, opts.max_inflight_bytes), bdev_ozone_decode_opt_u64, true},
	{"journal", offsetof(struct rpc_bdev_ozone_create, opts.journal), spdk_json_decode_string, true},
	{"journal_mb", offsetof(struct rpc_bdev_ozone_create, opts.journal_mb), bdev_ozone_decode_opt_u64, true},
	{"cache_mb", offsetof(struct rpc_bdev_ozone_create, opts.cache_mb), bdev_ozone_decode_opt_u64, true},
	{"force", offsetof(struct rpc_bdev_ozone_create, opts.force), spdk_json_decode_bool, true},
	{"readonly", offsetof(struct rpc_bdev_ozone_create, opts.readonly), spdk_json_decode_bool, true},
};

static void
free_rpc_bdev_ozone_create(struct rpc_bdev_ozone_create *req)
{
	free(req->opts.name);
	free(req->opts.uri);
	free(req->opts.uuid);
	free(req->opts.cpumask);
	free(req->opts.journal);
	free(req->ozone_uri);
}

static void
rpc_bdev_ozone_create_done(void *cb_arg, int rc, const char *bdev_name, bool created,
			   const char *uuid, const char *errmsg)
{
	struct spdk_jsonrpc_request *request = cb_arg;
	struct spdk_json_write_ctx *w;

	if (rc != 0) {
		bdev_ozone_rpc_error(request, rc, errmsg ? errmsg : spdk_strerror(-rc));
		return;
	}
	w = spdk_jsonrpc_begin_result(request);
	spdk_json_write_object_begin(w);
	spdk_json_write_named_string(w, "name", bdev_name);
	spdk_json_write_named_string(w, "action", created ? "created" : "opened");
	spdk_json_write_named_string(w, "uuid", uuid);
	spdk_json_write_object_end(w);
	spdk_jsonrpc_end_result(request, w);
}

static void
rpc_bdev_ozone_create(struct spdk_jsonrpc_request *request, const struct spdk_json_val *params)
{
	struct rpc_bdev_ozone_create req = {};
	char msg[BDEV_OZONE_RPC_MSGLEN];

	if (!bdev_ozone_decode(request, params, rpc_bdev_ozone_create_decoders,
			       SPDK_COUNTOF(rpc_bdev_ozone_create_decoders), &req, sizeof(req))) {
		goto out;
	}
	if ((req.opts.uri == NULL) == (req.ozone_uri == NULL)) {
		spdk_jsonrpc_send_error_response(request, SPDK_JSONRPC_ERROR_INVALID_PARAMS,
						 req.opts.uri == NULL ?
						 "missing required parameter 'uri' (or its old name 'ozone_uri')" :
						 "give 'uri' or 'ozone_uri', not both");
		goto out;
	}
	if (req.opts.uri == NULL) {
		req.opts.uri = req.ozone_uri;
		req.ozone_uri = NULL;
	}
	/* The engine's own checks, with its message, before anything starts. */
	if (bdev_ozone_check_opts(&req.opts, msg, sizeof(msg)) != 0) {
		bdev_ozone_rpc_error(request, SPDK_JSONRPC_ERROR_INVALID_PARAMS, msg);
		goto out;
	}
	bdev_ozone_create(&req.opts, rpc_bdev_ozone_create_done, request);
out:
	free_rpc_bdev_ozone_create(&req);
}
SPDK_RPC_REGISTER("bdev_ozone_create", rpc_bdev_ozone_create, SPDK_RPC_RUNTIME)
SPDK_RPC_REGISTER_ALIAS_DEPRECATED(bdev_ozone_create, ozone_bdev_create)

/* ---------------------------------------------------------------------------------------- */
/* bdev_ozone_delete (alias ozone_bdev_delete) */

struct rpc_bdev_ozone_delete {
	char *name;
	bool destroy_data;
};

static const struct spdk_json_object_decoder rpc_bdev_ozone_delete_decoders[] = {
	{"name", offsetof(struct rpc_bdev_ozone_delete, name), spdk_json_decode_string},
	{"destroy_data", offsetof(struct rpc_bdev_ozone_delete, destroy_data), spdk_json_decode_bool, true},
};

/* Answers a delete or resize request: true, or the error with its message. */
static void
rpc_bdev_ozone_bool_done(void *cb_arg, int rc, const char *errmsg)
{
	struct spdk_jsonrpc_request *request = cb_arg;

	if (rc != 0) {
		bdev_ozone_rpc_error(request, rc, errmsg ? errmsg : spdk_strerror(-rc));
		return;
	}
	spdk_jsonrpc_send_bool_response(request, true);
}

static void
rpc_bdev_ozone_delete(struct spdk_jsonrpc_request *request, const struct spdk_json_val *params)
{
	struct rpc_bdev_ozone_delete req = {};

	if (bdev_ozone_decode(request, params, rpc_bdev_ozone_delete_decoders,
			      SPDK_COUNTOF(rpc_bdev_ozone_delete_decoders), &req, sizeof(req))) {
		bdev_ozone_delete(req.name, req.destroy_data, rpc_bdev_ozone_bool_done, request);
	}
	free(req.name);
}
SPDK_RPC_REGISTER("bdev_ozone_delete", rpc_bdev_ozone_delete, SPDK_RPC_RUNTIME)
SPDK_RPC_REGISTER_ALIAS_DEPRECATED(bdev_ozone_delete, ozone_bdev_delete)

/* ---------------------------------------------------------------------------------------- */
/* bdev_ozone_resize */

struct rpc_bdev_ozone_resize {
	char		*name;
	uint64_t	new_size;
	bool		force;
};

static const struct spdk_json_object_decoder rpc_bdev_ozone_resize_decoders[] = {
	{"name", offsetof(struct rpc_bdev_ozone_resize, name), spdk_json_decode_string},
	{"new_size", offsetof(struct rpc_bdev_ozone_resize, new_size), spdk_json_decode_uint64},
	{"force", offsetof(struct rpc_bdev_ozone_resize, force), spdk_json_decode_bool, true},
};

static void
rpc_bdev_ozone_resize(struct spdk_jsonrpc_request *request, const struct spdk_json_val *params)
{
	struct rpc_bdev_ozone_resize req = {};

	if (bdev_ozone_decode(request, params, rpc_bdev_ozone_resize_decoders,
			      SPDK_COUNTOF(rpc_bdev_ozone_resize_decoders), &req, sizeof(req))) {
		bdev_ozone_resize(req.name, req.new_size, req.force, rpc_bdev_ozone_bool_done,
				  request);
	}
	free(req.name);
}
SPDK_RPC_REGISTER("bdev_ozone_resize", rpc_bdev_ozone_resize, SPDK_RPC_RUNTIME)
