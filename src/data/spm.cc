// spm.cc - SentencePiece models (tokenizer.model) through libsentencepiece, behind
// the C interface of spm.h. No exception or C++ type crosses it.
#include "spm.h"

#include <sentencepiece_processor.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

struct fm_spm {
  sentencepiece::SentencePieceProcessor sp;
};

static int fail(char *err, size_t errlen, const std::string &msg) {
  std::snprintf(err, errlen, "%s", msg.c_str());
  return -1;
}

extern "C" int fm_spm_load(const char *path, fm_spm **out, char *err, size_t errlen) {
  *out = nullptr;
  try {
    fm_spm *p = new fm_spm;
    auto st = p->sp.Load(path);
    if (!st.ok()) {
      delete p;
      return fail(err, errlen, st.ToString());
    }
    *out = p;
    return 0;
  } catch (const std::exception &e) {
    return fail(err, errlen, e.what());
  }
}

extern "C" void fm_spm_free(fm_spm *p) { delete p; }

extern "C" int fm_spm_vocab(const fm_spm *p) { return p->sp.GetPieceSize(); }

extern "C" int fm_spm_is_special(const fm_spm *p, int id) {
  return p->sp.IsControl(id) || p->sp.IsUnknown(id);
}

extern "C" const char *fm_spm_piece(const fm_spm *p, int id) { return p->sp.IdToPiece(id).c_str(); }

extern "C" int fm_spm_find(const fm_spm *p, const char *piece) {
  int id = p->sp.PieceToId(piece);
  // PieceToId answers the unknown id for any piece it lacks: only the unknown piece itself is it
  if (id == p->sp.unk_id() && p->sp.IdToPiece(id) != piece) return -1;
  return id;
}

extern "C" int fm_spm_encode(const fm_spm *p, const char *text, size_t len, int32_t **ids, size_t *n,
                             char *err, size_t errlen) {
  *ids = nullptr;
  *n = 0;
  try {
    std::vector<int> v;
    auto st = p->sp.Encode(std::string_view(text, len), &v);
    if (!st.ok()) return fail(err, errlen, st.ToString());
    int32_t *out = static_cast<int32_t *>(std::malloc((v.size() ? v.size() : 1) * sizeof *out));
    if (!out) return fail(err, errlen, "out of memory (SentencePiece ids)");
    for (size_t i = 0; i < v.size(); i++) out[i] = v[i];
    *ids = out;
    *n = v.size();
    return 0;
  } catch (const std::exception &e) {
    return fail(err, errlen, e.what());
  }
}

extern "C" int fm_spm_decode(const fm_spm *p, const int32_t *ids, size_t n, char **text, size_t *len,
                             char *err, size_t errlen) {
  *text = nullptr;
  *len = 0;
  try {
    std::vector<int> v(ids, ids + n);
    std::string s;
    auto st = p->sp.Decode(v, &s);
    if (!st.ok()) return fail(err, errlen, st.ToString());
    char *out = static_cast<char *>(std::malloc(s.size() + 1));
    if (!out) return fail(err, errlen, "out of memory (SentencePiece text)");
    std::memcpy(out, s.data(), s.size());
    out[s.size()] = 0;
    *text = out;
    *len = s.size();
    return 0;
  } catch (const std::exception &e) {
    return fail(err, errlen, e.what());
  }
}
