/*
 * Codexion plugin SDK for C: the guest side of the codexion:plugin@0.1.0 world.
 *
 * Freestanding (no libc): build with
 *   clang --target=wasm32 -nostdlib -O2 -Wl,--no-entry -o plugin.wasm plugin.c codexion.c
 *
 * A plugin defines the entry points it uses (the others keep weak defaults that answer
 * "not handled by this plugin", and a 404 JSON response for routes):
 *
 *   int    cx_on_hook(cx_str event, cx_str entity, cx_str doc, cx_str old, cx_str *out);
 *   cx_str cx_on_route(cx_str request);
 *   int    cx_on_job(cx_str name, cx_str payload, cx_str *err);
 *   int    cx_on_event(cx_str event, cx_str *err);
 *
 * They answer CX_OK or CX_ERR; *out / *err is the answer (the document, or the error
 * message). Everything a plugin hands back must outlive the call: string literals, or
 * memory from cx_alloc / cx_buf. A plugin instance serves one call and is then thrown
 * away, so memory is a bump allocator that never frees; when memory runs out the call
 * traps (the host reports it) rather than anything being corrupted.
 *
 * Strings are UTF-8 and NOT NUL-terminated: cx_str is a pointer and a length.
 */
#ifndef CODEXION_H
#define CODEXION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CX_OK 0
#define CX_ERR 1

/* The error the default entry points answer. */
#define CX_NOT_HANDLED "not handled by this plugin"

/* Log levels (the WIT enum `level`). */
enum cx_level { CX_TRACE = 0, CX_DEBUG = 1, CX_INFO = 2, CX_WARN = 3, CX_ERROR = 4 };

/* A UTF-8 string: pointer and length, no terminator. */
typedef struct {
  const char *ptr;
  size_t len;
} cx_str;

/* A cx_str from a string literal (no strlen at run time). */
#define CX_LIT(s) ((cx_str){(s), sizeof(s) - 1})

/* ---- entry points the plugin may define (weak defaults in codexion.c) ---- */
int cx_on_hook(cx_str event, cx_str entity, cx_str doc, cx_str old, cx_str *out);
cx_str cx_on_route(cx_str request);
int cx_on_job(cx_str name, cx_str payload, cx_str *err);
int cx_on_event(cx_str event, cx_str *err);

/* ---- host calls (all act for the tenant and are checked against the manifest) ---- */
void cx_log(enum cx_level level, cx_str message);
/* The tenant's configuration: a JSON object, defaults filled in. */
cx_str cx_config(void);
/* Each answers CX_OK with the JSON answer in *out, or CX_ERR with the reason in *out. */
int cx_get(cx_str entity, cx_str id, cx_str *out);
int cx_list(cx_str entity, cx_str query, cx_str *out);
int cx_insert(cx_str entity, cx_str doc, cx_str *out);
int cx_update(cx_str entity, cx_str id, cx_str patch, cx_str *out);
int cx_fetch(cx_str request, cx_str *out);
/* CX_OK with the milliseconds since the epoch in *ms, or CX_ERR with *err. */
int cx_now_ms(int64_t *ms, cx_str *err);

/* ---- memory ---- */
/* Bump allocation; traps when memory runs out, so never NULL. */
void *cx_alloc(size_t size, size_t align);

/* A growable byte buffer; start it zeroed: cx_buf b = {0}; */
typedef struct {
  char *ptr;
  size_t len;
  size_t cap;
} cx_buf;

void cx_buf_put(cx_buf *b, const char *bytes, size_t len);
void cx_buf_putc(cx_buf *b, char c);
void cx_buf_puts(cx_buf *b, const char *cstr); /* a NUL-terminated C string */
void cx_buf_str(cx_buf *b, cx_str s);
void cx_buf_uint(cx_buf *b, uint64_t n);
/* Appends s as a JSON string literal (quoted, escaped). */
void cx_buf_json_string(cx_buf *b, cx_str s);
cx_str cx_buf_done(const cx_buf *b);

/* ---- strings ---- */
cx_str cx_cstr(const char *cstr); /* from a NUL-terminated C string */
int cx_str_eq(cx_str a, cx_str b);
int cx_str_starts_with(cx_str s, cx_str prefix);
cx_str cx_str_trim(cx_str s); /* without leading/trailing JSON whitespace */
cx_str cx_str_concat(cx_str a, cx_str b);

/* ---- JSON (reads without building a tree: spans point into the input) ---- */
/* The raw text of member `key` of the top-level object `obj` (1 found, 0 not found or
 * malformed). Keys are compared as written, so look up keys without escapes. */
int cx_json_field(cx_str obj, const char *key, cx_str *value);
/* Decodes the JSON string literal `raw` into *out (1), or 0 if `raw` is not a string.
 * Without escapes *out points into `raw`; with them it is freshly allocated. */
int cx_json_string(cx_str raw, cx_str *out);
/* cx_json_field + cx_json_string: member `key` as a decoded string (1), else 0. */
int cx_json_string_field(cx_str obj, const char *key, cx_str *out);
/* The number of top-level elements of the array `raw`, or -1 if it is not an array. */
long cx_json_array_len(cx_str raw);
/* Whether `raw` is the literal null. */
int cx_json_is_null(cx_str raw);
/* The position just after the JSON value starting at p (leading whitespace skipped), or
 * NULL if it is malformed. */
const char *cx_json_skip_value(const char *p, const char *end);

/* ---- routes ---- */
/* {"status":status,"headers":{"content-type":"application/json"},"body":body_json} */
cx_str cx_response(int status, cx_str body_json);
/* A response with body {"error": message}. */
cx_str cx_error_response(int status, cx_str message);

/* ---- what clang may call on its own ---- */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#ifdef __cplusplus
}
#endif

#endif /* CODEXION_H */
