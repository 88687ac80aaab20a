/*
 * Codexion plugin SDK for C: the canonical-ABI glue, a bump allocator, the libc bits
 * clang may call, and the JSON helpers. See codexion.h.
 */
#include "codexion.h"

#define CX_EXPORT(name) __attribute__((export_name(name)))
#define CX_IMPORT(name) \
  __attribute__((import_module("codexion:plugin/host@0.1.0"), import_name(name)))

/* ---------------------------------------------------------------------------------- */
/* libc: clang emits calls to these for struct copies and large initialisers.        */
/* ---------------------------------------------------------------------------------- */

__attribute__((no_builtin)) void *memcpy(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

__attribute__((no_builtin)) void *memmove(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  if (d < s) {
    while (n--) *d++ = *s++;
  } else {
    d += n;
    s += n;
    while (n--) *--d = *--s;
  }
  return dst;
}

__attribute__((no_builtin)) void *memset(void *dst, int c, size_t n) {
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}

__attribute__((no_builtin)) int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  for (; n; n--, x++, y++)
    if (*x != *y) return *x < *y ? -1 : 1;
  return 0;
}

__attribute__((no_builtin)) size_t strlen(const char *s) {
  const char *p = s;
  while (*p) p++;
  return (size_t)(p - s);
}

/* ---------------------------------------------------------------------------------- */
/* Memory: a bump allocator from __heap_base, growing the memory as it goes.          */
/* ---------------------------------------------------------------------------------- */

extern unsigned char __heap_base;
static uintptr_t cx_heap_next;

#define CX_PAGE 65536ull

static void *cx_bump(size_t size, size_t align) {
  if (align == 0 || (align & (align - 1)) != 0) __builtin_trap();
  if (cx_heap_next == 0) cx_heap_next = (uintptr_t)&__heap_base;
  uint64_t start = ((uint64_t)cx_heap_next + align - 1) & ~(uint64_t)(align - 1);
  uint64_t end = start + (uint64_t)size;
  uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) * CX_PAGE;
  if (end > 0xFFFFFFFFull) __builtin_trap();
  if (end > have) {
    uint64_t pages = (end - have + CX_PAGE - 1) / CX_PAGE;
    if (__builtin_wasm_memory_grow(0, (size_t)pages) == (size_t)-1) __builtin_trap();
  }
  cx_heap_next = (uintptr_t)end;
  return (void *)(uintptr_t)start;
}

void *cx_alloc(size_t size, size_t align) { return cx_bump(size, align ? align : 1); }

/* The canonical ABI's allocator (the host calls it with old_ptr = 0, old_size = 0 to
 * place strings). Growing the most recent block extends it in place. */
CX_EXPORT("cabi_realloc")
void *cabi_realloc(void *old_ptr, size_t old_size, size_t align, size_t new_size) {
  if (old_ptr && old_size) {
    if (new_size <= old_size) return old_ptr;
    if ((uintptr_t)old_ptr + old_size == cx_heap_next &&
        ((uintptr_t)old_ptr & (align - 1)) == 0) {
      cx_bump(new_size - old_size, 1);
      return old_ptr;
    }
  }
  void *p = cx_bump(new_size, align);
  if (old_ptr && old_size) memcpy(p, old_ptr, old_size < new_size ? old_size : new_size);
  return p;
}

/* ---------------------------------------------------------------------------------- */
/* Host imports                                                                       */
/* ---------------------------------------------------------------------------------- */

CX_IMPORT("log") void cx__host_log(int32_t level, const char *ptr, size_t len);
CX_IMPORT("config") void cx__host_config(void *ret);
CX_IMPORT("get")
void cx__host_get(const char *e, size_t el, const char *id, size_t idl, void *ret);
CX_IMPORT("list")
void cx__host_list(const char *e, size_t el, const char *q, size_t ql, void *ret);
CX_IMPORT("insert")
void cx__host_insert(const char *e, size_t el, const char *d, size_t dl, void *ret);
CX_IMPORT("update")
void cx__host_update(const char *e, size_t el, const char *id, size_t idl, const char *p,
                     size_t pl, void *ret);
CX_IMPORT("now-ms") void cx__host_now_ms(void *ret);
CX_IMPORT("fetch") void cx__host_fetch(const char *r, size_t rl, void *ret);

/* A return area: 16 bytes, 8-aligned (result<string,string> is 12 bytes, align 4;
 * result<s64,string> is 16 bytes, align 8). */
typedef union {
  _Alignas(8) uint8_t bytes[16];
  struct {
    uint8_t tag;
    const char *ptr; /* @4 */
    size_t len;      /* @8 */
  } str_result;
  struct {
    const char *ptr; /* @0 */
    size_t len;      /* @4 */
  } str;
  struct {
    uint8_t tag;
    union {
      int64_t ok; /* @8 */
      struct {
        const char *ptr; /* @8 */
        size_t len;      /* @12 */
      } err;
    } u;
  } s64_result;
} cx_area;

_Static_assert(sizeof(cx_area) == 16, "return area is 16 bytes");
_Static_assert(__builtin_offsetof(cx_area, str_result.ptr) == 4, "ptr @4");
_Static_assert(__builtin_offsetof(cx_area, str_result.len) == 8, "len @8");
_Static_assert(__builtin_offsetof(cx_area, s64_result.u.ok) == 8, "s64 @8");
_Static_assert(__builtin_offsetof(cx_area, s64_result.u.err.len) == 12, "err len @12");

static int cx__result(const cx_area *a, cx_str *out) {
  out->ptr = a->str_result.ptr;
  out->len = a->str_result.len;
  return a->str_result.tag == 0 ? CX_OK : CX_ERR;
}

void cx_log(enum cx_level level, cx_str message) {
  cx__host_log((int32_t)level, message.ptr, message.len);
}

cx_str cx_config(void) {
  cx_area a;
  cx__host_config(&a);
  return (cx_str){a.str.ptr, a.str.len};
}

int cx_get(cx_str entity, cx_str id, cx_str *out) {
  cx_area a;
  cx__host_get(entity.ptr, entity.len, id.ptr, id.len, &a);
  return cx__result(&a, out);
}

int cx_list(cx_str entity, cx_str query, cx_str *out) {
  cx_area a;
  cx__host_list(entity.ptr, entity.len, query.ptr, query.len, &a);
  return cx__result(&a, out);
}

int cx_insert(cx_str entity, cx_str doc, cx_str *out) {
  cx_area a;
  cx__host_insert(entity.ptr, entity.len, doc.ptr, doc.len, &a);
  return cx__result(&a, out);
}

int cx_update(cx_str entity, cx_str id, cx_str patch, cx_str *out) {
  cx_area a;
  cx__host_update(entity.ptr, entity.len, id.ptr, id.len, patch.ptr, patch.len, &a);
  return cx__result(&a, out);
}

int cx_fetch(cx_str request, cx_str *out) {
  cx_area a;
  cx__host_fetch(request.ptr, request.len, &a);
  return cx__result(&a, out);
}

int cx_now_ms(int64_t *ms, cx_str *err) {
  cx_area a;
  cx__host_now_ms(&a);
  if (a.s64_result.tag == 0) {
    *ms = a.s64_result.u.ok;
    return CX_OK;
  }
  err->ptr = a.s64_result.u.err.ptr;
  err->len = a.s64_result.u.err.len;
  return CX_ERR;
}

/* ---------------------------------------------------------------------------------- */
/* Exports                                                                            */
/* ---------------------------------------------------------------------------------- */

/* The area the exports answer through (one call per instance, so one area). */
static cx_area cx_export_area;

__attribute__((weak)) int cx_on_hook(cx_str event, cx_str entity, cx_str doc, cx_str old,
                                     cx_str *out) {
  (void)event, (void)entity, (void)doc, (void)old;
  *out = CX_LIT(CX_NOT_HANDLED);
  return CX_ERR;
}

__attribute__((weak)) cx_str cx_on_route(cx_str request) {
  (void)request;
  return cx_error_response(404, CX_LIT("no such route in this plugin"));
}

__attribute__((weak)) int cx_on_job(cx_str name, cx_str payload, cx_str *err) {
  (void)name, (void)payload;
  *err = CX_LIT(CX_NOT_HANDLED);
  return CX_ERR;
}

__attribute__((weak)) int cx_on_event(cx_str event, cx_str *err) {
  (void)event;
  *err = CX_LIT(CX_NOT_HANDLED);
  return CX_ERR;
}

static void *cx__answer(int rc, cx_str s) {
  cx_export_area.str_result.tag = rc == CX_OK ? 0 : 1;
  cx_export_area.str_result.ptr = s.ptr;
  cx_export_area.str_result.len = s.len;
  return &cx_export_area;
}

CX_EXPORT("on-hook")
void *cx__export_on_hook(const char *ep, size_t el, const char *np, size_t nl, const char *dp,
                         size_t dl, const char *op, size_t ol) {
  cx_str out = {0, 0};
  int rc = cx_on_hook((cx_str){ep, el}, (cx_str){np, nl}, (cx_str){dp, dl}, (cx_str){op, ol},
                      &out);
  return cx__answer(rc, out);
}

CX_EXPORT("on-route")
void *cx__export_on_route(const char *rp, size_t rl) {
  cx_str out = cx_on_route((cx_str){rp, rl});
  cx_export_area.str.ptr = out.ptr;
  cx_export_area.str.len = out.len;
  return &cx_export_area;
}

CX_EXPORT("on-job")
void *cx__export_on_job(const char *np, size_t nl, const char *pp, size_t pl) {
  cx_str err = {0, 0};
  int rc = cx_on_job((cx_str){np, nl}, (cx_str){pp, pl}, &err);
  return cx__answer(rc, rc == CX_OK ? (cx_str){0, 0} : err);
}

CX_EXPORT("on-event")
void *cx__export_on_event(const char *ep, size_t el) {
  cx_str err = {0, 0};
  int rc = cx_on_event((cx_str){ep, el}, &err);
  return cx__answer(rc, rc == CX_OK ? (cx_str){0, 0} : err);
}

/* ---------------------------------------------------------------------------------- */
/* Buffers and strings                                                                */
/* ---------------------------------------------------------------------------------- */

void cx_buf_put(cx_buf *b, const char *bytes, size_t len) {
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap < b->len + len) cap *= 2;
    b->ptr = cabi_realloc(b->ptr, b->cap, 1, cap);
    b->cap = cap;
  }
  memcpy(b->ptr + b->len, bytes, len);
  b->len += len;
}

void cx_buf_putc(cx_buf *b, char c) { cx_buf_put(b, &c, 1); }
void cx_buf_puts(cx_buf *b, const char *cstr) { cx_buf_put(b, cstr, strlen(cstr)); }
void cx_buf_str(cx_buf *b, cx_str s) { cx_buf_put(b, s.ptr, s.len); }

void cx_buf_uint(cx_buf *b, uint64_t n) {
  char digits[20];
  int i = 20;
  do {
    digits[--i] = (char)('0' + n % 10);
    n /= 10;
  } while (n);
  cx_buf_put(b, digits + i, (size_t)(20 - i));
}

void cx_buf_json_string(cx_buf *b, cx_str s) {
  static const char hex[] = "0123456789abcdef";
  cx_buf_putc(b, '"');
  for (size_t i = 0; i < s.len; i++) {
    unsigned char c = (unsigned char)s.ptr[i];
    switch (c) {
      case '"': cx_buf_put(b, "\\\"", 2); break;
      case '\\': cx_buf_put(b, "\\\\", 2); break;
      case '\n': cx_buf_put(b, "\\n", 2); break;
      case '\r': cx_buf_put(b, "\\r", 2); break;
      case '\t': cx_buf_put(b, "\\t", 2); break;
      default:
        if (c < 0x20) {
          char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
          cx_buf_put(b, e, 6);
        } else {
          cx_buf_putc(b, (char)c); /* UTF-8 passes through */
        }
    }
  }
  cx_buf_putc(b, '"');
}

cx_str cx_buf_done(const cx_buf *b) { return (cx_str){b->ptr, b->len}; }

cx_str cx_cstr(const char *cstr) { return (cx_str){cstr, strlen(cstr)}; }

int cx_str_eq(cx_str a, cx_str b) { return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0; }

int cx_str_starts_with(cx_str s, cx_str prefix) {
  return s.len >= prefix.len && memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

static int cx__ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

cx_str cx_str_trim(cx_str s) {
  while (s.len && cx__ws(s.ptr[0])) s.ptr++, s.len--;
  while (s.len && cx__ws(s.ptr[s.len - 1])) s.len--;
  return s;
}

cx_str cx_str_concat(cx_str a, cx_str b) {
  char *p = cx_alloc(a.len + b.len, 1);
  memcpy(p, a.ptr, a.len);
  memcpy(p + a.len, b.ptr, b.len);
  return (cx_str){p, a.len + b.len};
}

/* ---------------------------------------------------------------------------------- */
/* JSON                                                                               */
/* ---------------------------------------------------------------------------------- */

static const char *cx__skip_ws(const char *p, const char *end) {
  while (p < end && cx__ws(*p)) p++;
  return p;
}

/* p at the opening quote; answers the position after the closing quote, or NULL. */
static const char *cx__skip_string(const char *p, const char *end) {
  for (p++; p < end; p++) {
    if (*p == '\\') {
      p++;
    } else if (*p == '"') {
      return p + 1;
    }
  }
  return NULL;
}

const char *cx_json_skip_value(const char *p, const char *end) {
  p = cx__skip_ws(p, end);
  if (p >= end) return NULL;
  if (*p == '"') return cx__skip_string(p, end);
  if (*p == '{' || *p == '[') {
    /* Brackets balance in valid JSON once strings are skipped; count the depth. */
    size_t depth = 0;
    while (p < end) {
      char c = *p;
      if (c == '"') {
        p = cx__skip_string(p, end);
        if (!p) return NULL;
        continue;
      }
      if (c == '{' || c == '[') depth++;
      if (c == '}' || c == ']') {
        if (depth == 0) return NULL;
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return NULL;
  }
  /* A number or literal: up to the next delimiter. */
  const char *start = p;
  while (p < end && !cx__ws(*p) && *p != ',' && *p != '}' && *p != ']' && *p != ':') p++;
  return p > start ? p : NULL;
}

int cx_json_field(cx_str obj, const char *key, cx_str *value) {
  const char *p = obj.ptr, *end = obj.ptr + obj.len;
  size_t key_len = strlen(key);
  int found = 0;
  p = cx__skip_ws(p, end);
  if (p >= end || *p != '{') return 0;
  p = cx__skip_ws(p + 1, end);
  if (p < end && *p == '}') return 0;
  while (p < end) {
    if (*p != '"') return found;
    const char *k = p + 1;
    const char *after = cx__skip_string(p, end);
    if (!after) return found;
    size_t klen = (size_t)(after - 1 - k);
    p = cx__skip_ws(after, end);
    if (p >= end || *p != ':') return found;
    p = cx__skip_ws(p + 1, end);
    const char *vend = cx_json_skip_value(p, end);
    if (!vend) return found;
    if (klen == key_len && memcmp(k, key, key_len) == 0) {
      /* Keep looking: a repeated key's last value wins, as in most parsers. */
      value->ptr = p;
      value->len = (size_t)(vend - p);
      found = 1;
    }
    p = cx__skip_ws(vend, end);
    if (p >= end) return found;
    if (*p == '}') return found;
    if (*p != ',') return found;
    p = cx__skip_ws(p + 1, end);
  }
  return found;
}

static int cx__hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static long cx__hex4(const char *p, const char *end) {
  if (end - p < 4) return -1;
  long n = 0;
  for (int i = 0; i < 4; i++) {
    int d = cx__hex(p[i]);
    if (d < 0) return -1;
    n = n * 16 + d;
  }
  return n;
}

static void cx__put_utf8(cx_buf *b, unsigned long cp) {
  char u[4];
  if (cp < 0x80) {
    u[0] = (char)cp;
    cx_buf_put(b, u, 1);
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    cx_buf_put(b, u, 2);
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    cx_buf_put(b, u, 3);
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    cx_buf_put(b, u, 4);
  }
}

int cx_json_string(cx_str raw, cx_str *out) {
  raw = cx_str_trim(raw);
  const char *end = raw.ptr + raw.len;
  if (raw.len < 2 || raw.ptr[0] != '"' || cx__skip_string(raw.ptr, end) != end) return 0;
  const char *p = raw.ptr + 1, *stop = end - 1;
  int escaped = 0;
  for (const char *q = p; q < stop; q++)
    if (*q == '\\') escaped = 1;
  if (!escaped) {
    *out = (cx_str){p, (size_t)(stop - p)};
    return 1;
  }
  cx_buf b = {0};
  while (p < stop) {
    char c = *p++;
    if (c != '\\') {
      cx_buf_putc(&b, c);
      continue;
    }
    if (p >= stop) return 0;
    char e = *p++;
    switch (e) {
      case '"': cx_buf_putc(&b, '"'); break;
      case '\\': cx_buf_putc(&b, '\\'); break;
      case '/': cx_buf_putc(&b, '/'); break;
      case 'b': cx_buf_putc(&b, '\b'); break;
      case 'f': cx_buf_putc(&b, '\f'); break;
      case 'n': cx_buf_putc(&b, '\n'); break;
      case 'r': cx_buf_putc(&b, '\r'); break;
      case 't': cx_buf_putc(&b, '\t'); break;
      case 'u': {
        long cp = cx__hex4(p, stop);
        if (cp < 0) return 0;
        p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && stop - p >= 6 && p[0] == '\\' && p[1] == 'u') {
          long lo = cx__hex4(p + 2, stop);
          if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
          }
        }
        if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* a lone surrogate */
        cx__put_utf8(&b, (unsigned long)cp);
        break;
      }
      default: return 0;
    }
  }
  *out = cx_buf_done(&b);
  return 1;
}

int cx_json_string_field(cx_str obj, const char *key, cx_str *out) {
  cx_str raw;
  return cx_json_field(obj, key, &raw) && cx_json_string(raw, out);
}

long cx_json_array_len(cx_str raw) {
  const char *p = raw.ptr, *end = raw.ptr + raw.len;
  p = cx__skip_ws(p, end);
  if (p >= end || *p != '[') return -1;
  p = cx__skip_ws(p + 1, end);
  if (p < end && *p == ']') return 0;
  long n = 0;
  while (p < end) {
    p = cx_json_skip_value(p, end);
    if (!p) return -1;
    n++;
    p = cx__skip_ws(p, end);
    if (p >= end) return -1;
    if (*p == ']') return n;
    if (*p != ',') return -1;
    p++;
  }
  return -1;
}

int cx_json_is_null(cx_str raw) { return cx_str_eq(cx_str_trim(raw), CX_LIT("null")); }

/* ---------------------------------------------------------------------------------- */
/* Routes                                                                             */
/* ---------------------------------------------------------------------------------- */

cx_str cx_response(int status, cx_str body_json) {
  cx_buf b = {0};
  cx_buf_puts(&b, "{\"status\":");
  cx_buf_uint(&b, (uint64_t)(status < 0 ? 0 : status));
  cx_buf_puts(&b, ",\"headers\":{\"content-type\":\"application/json\"},\"body\":");
  cx_buf_str(&b, body_json);
  cx_buf_putc(&b, '}');
  return cx_buf_done(&b);
}

cx_str cx_error_response(int status, cx_str message) {
  cx_buf b = {0};
  cx_buf_puts(&b, "{\"error\":");
  cx_buf_json_string(&b, message);
  cx_buf_putc(&b, '}');
  return cx_response(status, cx_buf_done(&b));
}
