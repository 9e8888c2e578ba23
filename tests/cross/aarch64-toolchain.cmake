# Cross-compiles for AArch64 Linux with Debian's g++-aarch64-linux-gnu; tests run under
# qemu-user (ctest prefixes every add_test(COMMAND <target>) with the emulator).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)  # CMakeLists.txt keys the NEON variant on this

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Target libraries and headers come only from the aarch64 sysroot; programs (ninja, ...) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Package configs may come from the host too: doctest is header-only and architecture-independent
# (cpp/tests/CMakeLists.txt copies its headers so the host's /usr/include stays out of the build).
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
