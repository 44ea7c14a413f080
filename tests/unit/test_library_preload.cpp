/* gst/library_preload.h: a plugin's libraries loaded one at a time before the plugin. */
#include <gst/check/gstcheck.h>

#include <dlfcn.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "library_preload.h"

using namespace gstmtx;

GST_START_TEST(test_elf_dependencies_of_this_program) {
  ElfDependencies deps;
  fail_unless(read_elf_dependencies("/proc/self/exe", &deps));
  fail_unless_equals_int(deps.elf_class, sizeof(void *) == 8 ? 2 : 1); /* ELFCLASS64 / ELFCLASS32 */
  bool gstreamer = false;
  for (const std::string &n : deps.needed)
    gstreamer = gstreamer || n == "libgstreamer-1.0.so.0";
  fail_unless(gstreamer, "libgstreamer-1.0.so.0 not among this program's %zu DT_NEEDED", deps.needed.size());
  /* not ELF, or not there */
  g_autofree char *text = nullptr;
  gint fd = g_file_open_tmp("preload-XXXXXX", &text, nullptr);
  fail_unless(fd >= 0);
  fail_unless(write(fd, "not an ELF file at all, longer than its header", 46) == 46);
  close(fd);
  fail_if(read_elf_dependencies(text, &deps));
  g_unlink(text);
  fail_if(read_elf_dependencies("/nonexistent/libnothing.so.1", &deps));
}
GST_END_TEST;

/* A cache in glibc's "glibc-ld.so.cache1.1" format: header, entries, strings. */
static std::string make_cache(const std::vector<std::vector<std::string>> &entries /* soname, path, hwcap */) {
  const size_t header = 48, entry = 24;
  std::string strings;
  std::string out(header + entry * entries.size(), '\0');
  memcpy(&out[0], "glibc-ld.so.cache1.1", 20);
  const uint32_t count = entries.size();
  memcpy(&out[20], &count, 4);
  for (size_t i = 0; i < entries.size(); i++) {
    const uint32_t key = out.size() + strings.size();
    strings += entries[i][0] + '\0';
    const uint32_t value = out.size() + strings.size();
    strings += entries[i][1] + '\0';
    const int32_t flags = 0x0303;
    const uint64_t hwcap = entries[i].size() > 2 ? 1ull << 62 : 0;
    char *e = &out[header + i * entry];
    memcpy(e, &flags, 4);
    memcpy(e + 4, &key, 4);
    memcpy(e + 8, &value, 4);
    memcpy(e + 16, &hwcap, 8);
  }
  return out + strings;
}

GST_START_TEST(test_ld_cache_lookup) {
  const std::string cache = make_cache({{"liba.so.1", "/usr/lib/liba.so.1"},
                                        {"libb.so.2", "/usr/lib/x86-64-v3/libb.so.2", "hwcap"},
                                        {"libb.so.2", "/usr/lib/libb.so.2"}});
  bool variants = true;
  auto a = ld_cache_paths(cache, "liba.so.1", &variants);
  fail_unless_equals_int(a.size(), 1);
  fail_unless_equals_string(a[0].c_str(), "/usr/lib/liba.so.1");
  fail_if(variants);
  auto b = ld_cache_paths(cache, "libb.so.2", &variants);
  fail_unless_equals_int(b.size(), 2);
  fail_unless(variants);
  fail_unless(ld_cache_paths(cache, "libc.so.6").empty());
  /* another format, or entries past the end: nothing */
  std::string old = cache;
  old[0] = 'x';
  fail_unless(ld_cache_paths(old, "liba.so.1").empty());
  std::string cut = cache;
  const uint32_t too_many = 1000;
  memcpy(&cut[20], &too_many, 4);
  fail_unless(ld_cache_paths(cut, "liba.so.1").empty());
  fail_unless(ld_cache_paths("", "liba.so.1").empty());
  /* this machine's cache knows libc */
  std::string real;
  g_autofree char *bytes = nullptr;
  gsize size = 0;
  if (g_file_get_contents("/etc/ld.so.cache", &bytes, &size, nullptr)) {
    real.assign(bytes, size);
    fail_if(ld_cache_paths(real, "libc.so.6").empty(), "libc.so.6 is not in /etc/ld.so.cache");
  }
}
GST_END_TEST;

/* A decoder plugin whose libraries this test program has not loaded: they are all loaded after
 * preload_library_dependencies, the plugin itself not, and GStreamer then loads it. */
GST_START_TEST(test_plugin_libraries_loaded_first) {
  GstPlugin *plugin = nullptr;
  ElfDependencies deps;
  std::vector<std::string> missing;
  for (const char *element : {"avdec_h264", "vp8dec", "opusdec", "x264enc"}) {
    GstElementFactory *f = gst_element_factory_find(element);
    if (!f)
      continue;
    GstPlugin *p = gst_plugin_feature_get_plugin(GST_PLUGIN_FEATURE(f));
    gst_object_unref(f);
    missing.clear();
    if (p && !gst_plugin_is_loaded(p) && read_elf_dependencies(gst_plugin_get_filename(p), &deps)) {
      for (const std::string &n : deps.needed) {
        if (void *h = dlopen(n.c_str(), RTLD_LAZY | RTLD_NOLOAD))
          dlclose(h);
        else
          missing.push_back(n);
      }
    }
    if (!missing.empty()) {
      plugin = p;
      break;
    }
    if (p)
      gst_object_unref(p);
  }
  fail_unless(plugin != nullptr, "no decoder plugin with libraries not loaded yet (gstreamer1.0-libav, -good)");
  const int loaded = preload_library_dependencies(gst_plugin_get_filename(plugin));
  fail_unless(loaded >= static_cast<int>(missing.size()), "%d loaded, %zu missing", loaded, missing.size());
  for (const std::string &n : missing) {
    void *h = dlopen(n.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    fail_unless(h != nullptr, "%s not loaded", n.c_str());
    dlclose(h);
  }
  fail_if(gst_plugin_is_loaded(plugin));
  GstPlugin *now = gst_plugin_load(plugin);
  fail_unless(now != nullptr && gst_plugin_is_loaded(now));
  gst_object_unref(now);
  gst_object_unref(plugin);
  fail_unless_equals_int(preload_library_dependencies("/nonexistent/libgstnothing.so"), 0);
}
GST_END_TEST;

static Suite *library_preload_suite(void) {
  Suite *s = suite_create("library_preload");
  TCase *tc = tcase_create("general");
  tcase_add_test(tc, test_elf_dependencies_of_this_program);
  tcase_add_test(tc, test_ld_cache_lookup);
  tcase_add_test(tc, test_plugin_libraries_loaded_first);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(library_preload);
