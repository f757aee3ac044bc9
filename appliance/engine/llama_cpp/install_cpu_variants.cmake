# Included into llama-cpp-python's top-level project (CMAKE_PROJECT_llama_cpp_INCLUDE) for dynamic builds:
# its own install rules ship libggml-cpu.so only, not the per-CPU modules GGML_CPU_ALL_VARIANTS builds
# (libggml-cpu-haswell.so, ...). Install those next to libllama.so, where the unit looks for them.
function(_iplm_install_cpu_variants)
  get_property(targets DIRECTORY "${CMAKE_SOURCE_DIR}/vendor/llama.cpp/ggml/src" PROPERTY BUILDSYSTEM_TARGETS)
  foreach(target IN LISTS targets)
    if(target MATCHES "^ggml-cpu-")
      set_target_properties(${target} PROPERTIES INSTALL_RPATH "$ORIGIN" BUILD_WITH_INSTALL_RPATH TRUE)
      install(TARGETS ${target} LIBRARY DESTINATION "${SKBUILD_PLATLIB_DIR}/llama_cpp/lib")
    endif()
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _iplm_install_cpu_variants)
