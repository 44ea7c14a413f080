/* gst-mediamtx: replays the committed fuzz inputs (seed corpora and former crashers) through the
 * fuzz targets, without clang or libFuzzer, so every crash found once stays fixed.
 *
 *   replay <tests/fuzz dir>   reads every file of corpus/<target>/ and crashers/<target>/
 *
 * A broken promise aborts (see fuzz_targets.cpp); otherwise prints "N passed, 0 failed".
 */
#include <glib.h>

#include <cstdio>
#include <string>

#include "fuzz_targets.h"

static int replay_folder(const fuzz::Target &target, const std::string &folder) {
  GDir *dir = g_dir_open(folder.c_str(), 0, nullptr);
  if (!dir)
    return 0;
  int count = 0;
  while (const char *name = g_dir_read_name(dir)) {
    const std::string path = folder + "/" + name;
    gchar *contents = nullptr;
    gsize length = 0;
    if (!g_file_get_contents(path.c_str(), &contents, &length, nullptr))
      continue;
    std::fprintf(stderr, "%s: %s\n", target.name, path.c_str());
    target.run(reinterpret_cast<const uint8_t *>(contents), length);
    g_free(contents);
    ++count;
  }
  g_dir_close(dir);
  return count;
}

int main(int argc, char **argv) {
  if (argc != 2 || std::string(argv[1]) == "--help") {
    std::fprintf(stderr, "usage: %s <tests/fuzz directory>\n", argv[0]);
    return argc == 2 ? 0 : 2;
  }
  fuzz::init();
  const std::string root = argv[1];
  int total = 0;
  for (const fuzz::Target *t = fuzz::kTargets; t->name; ++t) {
    const int seeds = replay_folder(*t, root + "/corpus/" + t->name);
    const int crashers = replay_folder(*t, root + "/crashers/" + t->name);
    if (seeds == 0) {
      std::fprintf(stderr, "%s: no seed corpus in %s/corpus/%s\n", t->name, root.c_str(), t->name);
      std::printf("%d passed, 1 failed\n", total);
      return 1;
    }
    std::printf("%s: %d seeds, %d former crashers replayed\n", t->name, seeds, crashers);
    total += seeds + crashers;
  }
  std::printf("%d passed, 0 failed\n", total);
  return 0;
}
