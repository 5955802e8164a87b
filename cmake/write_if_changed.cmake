# write_if_changed.cmake: csc_write_if_changed(FILE TEXT) for the generators run with cmake -P (embed_migrations,
# embed_messages): FILE is written (through FILE.tmp and a rename) only when its text changes, so that a rerun
# without a change recompiles nothing.
function(csc_write_if_changed _file _text)
  if(EXISTS ${_file})
    file(READ ${_file} _old)
    if(_old STREQUAL _text)
      return()
    endif()
  endif()
  file(WRITE ${_file}.tmp "${_text}")
  file(RENAME ${_file}.tmp ${_file})
endfunction()
