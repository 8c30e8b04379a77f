# mla-calib (issue 30) on the real model, included from tests/examples/CMakeLists.txt (which defines mla_cli_test,
# ${calib} (the README as corpus), ${conv} with its fixture mla_cli_converted (the 50 % conversion), ${small} and
# ${fail}). With a window of 32 the README gives swa samples of 8-32 tokens and full ones of 64-128; the sets hold
# 512 tokens each, enough for a cheap conversion (${small}: 256 + 128 held out + a window of 64), which then reads
# the mixed set. Bad requests fail before the model loads.
set(calib_dir "${CMAKE_CURRENT_BINARY_DIR}/calib")
file(MAKE_DIRECTORY "${calib_dir}" "${calib_dir}/taken")
add_test(NAME examples_build_calib
         COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target mla-calib mla-convert --config $<CONFIG>)
set_tests_properties(examples_build_calib PROPERTIES FIXTURES_SETUP mla_calib_built RESOURCE_LOCK mla_build_tree
                                                     LABELS examples)
set(calib_cmd "$<TARGET_FILE:mla-calib>|--model|@MODEL@|--corpus|${calib}|--window|32|--tokens|512")
mla_cli_test(cli_calib FIXTURES_SETUP mla_cli_calib FIXTURES_REQUIRED "mla_calib_built;mla_cli_converted" ARGS
  "-DCMD=${calib_cmd}|--candidates|1|--hard-pool-tokens|600|--student|${conv}|--out|${calib_dir}/sets"
  "-DCLEAN=${calib_dir}/sets" -DEXPECT=ok
  "-DMATCH=window +32 tokens: swa samples 8-32 tokens, full 64-128.*\nswa +[0-9]+ +5[0-9][0-9] +[0-9]+ +0 .*\nfull +[0-9]+ +[0-9]+ +0 .*\nmixed .*\nrandom .*\nhard +[0-9]+ +[0-9]+ .* [0-9]+[.][0-9]+\n.*wrote ${calib_dir}/sets: calib_swa.jsonl calib_full.jsonl calib_mixed.jsonl calib_random.jsonl calib_hard.jsonl calib_summary.json"
  "-DEXIST=${calib_dir}/sets/calib_swa.jsonl|${calib_dir}/sets/calib_full.jsonl|${calib_dir}/sets/calib_mixed.jsonl|${calib_dir}/sets/calib_hard.jsonl|${calib_dir}/sets/calib_summary.json")
mla_cli_test(cli_convert_on_calib_set FIXTURES_REQUIRED "mla_calib_built;mla_cli_calib" ARGS
  "-DCMD=$<TARGET_FILE:mla-convert>|--model|@MODEL@|--calib|${calib_dir}/sets/calib_mixed.jsonl|--window|64|${small}|--kv-budget|0.5|--out|${calib_dir}/conv"
  "-DCLEAN=${calib_dir}/conv" -DEXPECT=ok "-DMATCH=wrote ${calib_dir}/conv" "-DEXIST=${calib_dir}/conv/model.safetensors")
mla_cli_test(cli_calib_missing_corpus FIXTURES_REQUIRED mla_calib_built ARGS
  "-DCMD=$<TARGET_FILE:mla-calib>|--model|@MODEL@|--corpus|${fail}/no_such.txt|--out|${fail}/calib_a"
  -DEXPECT=fail "-DMATCH=^mla-calib: error: --corpus: cannot open '${fail}/no_such.txt'" "-DABSENT=${fail}/calib_a")
mla_cli_test(cli_calib_out_exists FIXTURES_REQUIRED mla_calib_built ARGS
  "-DCMD=${calib_cmd}|--out|${calib_dir}/taken" -DEXPECT=fail
  "-DMATCH=^mla-calib: error: --out: output '${calib_dir}/taken' already exists")
mla_cli_test(cli_calib_small_window FIXTURES_REQUIRED mla_calib_built ARGS
  "-DCMD=$<TARGET_FILE:mla-calib>|--model|@MODEL@|--corpus|${calib}|--window|4|--out|${fail}/calib_b" -DEXPECT=fail
  "-DMATCH=^mla-calib: error: --window must be >= 8 tokens, found 4" "-DABSENT=${fail}/calib_b")
