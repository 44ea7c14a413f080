/* One libFuzzer binary per target: built by tests/fuzz/build.sh with -DFUZZ_TARGET=<name>. */
#include "fuzz_targets.h"

#include <glib.h>

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=<target name>, see tests/fuzz/build.sh"
#endif

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  fuzz::init();
  /* GLib grows its quark table 2048 entries at a time and, by design, never frees the old array
   * (lock-free readers). A target whose first input on some path registers the quark that crosses
   * a block boundary would have that array reported as leaked by that input. Cross the next
   * boundary now, before any input: a target that kept making quarks would still be reported. */
  for (int i = 0;; ++i) {
    g_autofree char *name = g_strdup_printf("fuzz-quark-prewarm-%d", i);
    if (g_quark_from_string(name) % 2048 == 0)
      break;
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz::FUZZ_TARGET(data, size); }
