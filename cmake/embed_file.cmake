# Writes OUT, a C++ file defining `const char* NAME` with the bytes of IN (run as
# cmake -DIN=... -DOUT=... -DNAME=... -P embed_file.cmake at build time).
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x[0-9a-f][0-9a-f],){32}" "\\0\n" bytes "${bytes}")
file(WRITE "${OUT}" "// Generated from ${IN}; do not edit.\n#include <cstddef>\nnamespace parallama::assets {\nextern const unsigned char ${NAME}[] = {\n${bytes}0x00};\nextern const size_t ${NAME}_size = sizeof(${NAME}) - 1;\n}\n")
