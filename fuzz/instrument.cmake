# Included from the top-level CMakeLists.txt when DEEPCUT_BUILD_FUZZ is ON, before
# any library is defined: every library a fuzz target links is built with
# AddressSanitizer, UndefinedBehaviorSanitizer and libFuzzer's coverage hooks, so
# the fuzzer is guided by, and the sanitizers see into, the code under test.
# Undefined behaviour aborts (no recovery) so that libFuzzer records it as a crash.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "DEEPCUT_BUILD_FUZZ needs clang: configure with -DCMAKE_CXX_COMPILER=clang++ "
                      "(scripts/fuzz.sh does)")
endif()
add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                    -fsanitize=fuzzer-no-link -fno-omit-frame-pointer)
add_link_options(-fsanitize=address,undefined)
