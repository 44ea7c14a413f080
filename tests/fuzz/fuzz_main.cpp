/* One libFuzzer binary per target: built by tests/fuzz/build.sh with -DFUZZ_TARGET=<name>. */
#include "fuzz_targets.h"

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=<target name>, see tests/fuzz/build.sh"
#endif

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  fuzz::init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz::FUZZ_TARGET(data, size); }
