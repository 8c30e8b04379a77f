# mla-inspect (issue 30) on the real model, included from tests/examples/CMakeLists.txt (which defines
# mla_cli_test, ${calib}, ${conv}, ${blocked} and the fixture mla_cli_converted, the 50 % conversion).
set(inspect_dir "${CMAKE_CURRENT_BINARY_DIR}/inspect")
file(MAKE_DIRECTORY "${inspect_dir}")
add_test(NAME examples_build_inspect
         COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target mla-inspect mla-make-gpt-oss --config $<CONFIG>)
set_tests_properties(examples_build_inspect PROPERTIES FIXTURES_SETUP mla_inspect_built RESOURCE_LOCK mla_build_tree
                                                       LABELS examples)
set(inspect "$<TARGET_FILE:mla-inspect>")

# SmolLM2 caches 3 KV heads x 64 x (K, V) floats = 1536 bytes per token in each of its 30 layers: 46080 bytes per
# token, 180 MiB at 4096 tokens. The 50 % conversion keeps 768 per layer (23040 in all), half at every context.
mla_cli_test(cli_inspect_kv FIXTURES_REQUIRED mla_inspect_built ARGS
  "-DCMD=${inspect}|kv|--model|@MODEL@|--ctx|4096,32768|--out|${inspect_dir}/kv.csv"
  "-DCLEAN=${inspect_dir}/kv.csv" -DEXPECT=ok
  "-DMATCH=   29 +1536 gqa.  all +46080.*  4096 +180.00 \\(1.000\\). +32768 +1440.00 \\(1.000\\)"
  "-DEXIST=${inspect_dir}/kv.csv")
mla_cli_test(cli_inspect_kv_compare FIXTURES_REQUIRED "mla_inspect_built;mla_cli_converted" ARGS
  "-DCMD=${inspect}|kv|--model|@MODEL@|--compare|${conv}|--ctx|4096|--out|${inspect_dir}/kv.json"
  "-DCLEAN=${inspect_dir}/kv.json" -DEXPECT=ok
  "-DMATCH=   29 +1536 gqa +768 mla.  all +46080 +23040.*  4096 +180.00 \\(1.000\\) +90.00 \\(0.500\\)"
  "-DEXIST=${inspect_dir}/kv.json")
# geometry on the original and the converted model: a row per layer and head of each (30 x 9), a CSV, and the
# heatmaps when gnuplot is installed (otherwise the message that says how to get it).
set(geometry "${inspect}|geometry|--model|@MODEL@|--compare|${conv}|--text|${calib}|--max-tokens|64")
set(drawn "(wrote [^ ]*compare_entropy_ratio.svg|gnuplot was not found)")
mla_cli_test(cli_inspect_geometry FIXTURES_REQUIRED "mla_inspect_built;mla_cli_converted" ARGS
  "-DCMD=${geometry}|--out|${inspect_dir}/geometry.csv|--plot|${inspect_dir}/plots"
  "-DCLEAN=${inspect_dir}/geometry.csv|${inspect_dir}/plots" -DEXPECT=ok
  "-DMATCH=: 64 tokens.layer head attn.*   29    8  gqa .*: 64 tokens.*   29    8  mla .*${drawn}"
  "-DEXIST=${inspect_dir}/geometry.csv")
# sinks: SmolLM2 has no learned sinks (the sink column is 0 everywhere); its late layers park most of the mass on
# the first token, so heads are flagged at 0.5. With the conversion beside it: a second column pair and the change.
set(sinks "${inspect}|sinks|--model|@MODEL@|--text|${calib}|--max-tokens|64")
mla_cli_test(cli_inspect_sinks FIXTURES_REQUIRED mla_inspect_built ARGS
  "-DCMD=${sinks}|--out|${inspect_dir}/sinks.csv" "-DCLEAN=${inspect_dir}/sinks.csv" -DEXPECT=ok
  "-DMATCH=layer head  attn     sink    first.*   29    8   gqa   0.0000 +0\\.[0-9]+.*: [1-9][0-9]* heads flagged"
  "-DEXIST=${inspect_dir}/sinks.csv")
mla_cli_test(cli_inspect_sinks_compare FIXTURES_REQUIRED "mla_inspect_built;mla_cli_converted" ARGS
  "-DCMD=${sinks}|--compare|${conv}|--threshold|0.3|--out|${inspect_dir}/sinks.json"
  "-DCLEAN=${inspect_dir}/sinks.json" -DEXPECT=ok
  "-DMATCH=\\* above 0.3.*d\\(sink\\) d\\(first\\).*   29    8   gqa   0.0000 +0\\.[0-9]+ . +mla   0.0000 +\
0\\.[0-9]+ . +[-+]0\\.0000 +[-+]0\\.[0-9]+"
  "-DEXIST=${inspect_dir}/sinks.json")
# compare: the original against its 50 % conversion, every layer converted (gqa -> mla), the worst tokens listed.
mla_cli_test(cli_inspect_compare FIXTURES_REQUIRED "mla_inspect_built;mla_cli_converted" ARGS
  "-DCMD=${inspect}|compare|--model|@MODEL@|--compare|${conv}|--text|${calib}|--max-tokens|64|--worst|3\
|--out|${inspect_dir}/compare.csv"
  "-DCLEAN=${inspect_dir}/compare.csv" -DEXPECT=ok
  "-DMATCH=64 tokens.KL\\(teacher \\|\\| student\\) per token: mean [0-9.]+ +p50 [0-9.]+ +p90 [0-9.]+ +\
max [0-9.]+.top-1 agreement [01]\\.[0-9]+.*   29     gqa     mla  0\\.[0-9]+.worst tokens: position +KL +next \\| \
teacher top-1 \\| student top-1 \\| context. +[0-9]+ +[0-9.]+  "
  "-DEXIST=${inspect_dir}/compare.csv")
mla_cli_test(cli_inspect_compare_needs_a_student FIXTURES_REQUIRED mla_inspect_built ARGS
  "-DCMD=${inspect}|compare|--model|@MODEL@|--text|${calib}" -DEXPECT=fail "-DMATCH=--compare is required")
# Real sinks: a generated tiny gpt-oss checkpoint (layers 0, 2 sliding-window, 1, 3 full attention; learned sink
# logits) and its conversion at half the cache (the full-attention layers become MLA, keeping their sinks). The
# sink column is non-zero on both, in the GQA and the MLA layers; compare shows layer 0 unchanged (error 0).
set(gpt_oss "${inspect_dir}/gpt_oss")
mla_cli_test(cli_inspect_gpt_oss_make FIXTURES_SETUP mla_inspect_gpt_oss FIXTURES_REQUIRED mla_inspect_built ARGS
  "-DCMD=$<TARGET_FILE:mla-make-gpt-oss>|--out|${gpt_oss}|--preset|tiny|--seed|7" "-DCLEAN=${gpt_oss}" -DEXPECT=ok
  "-DMATCH=gpt-oss tiny" "-DEXIST=${gpt_oss}/config.json")
mla_cli_test(cli_inspect_gpt_oss_convert FIXTURES_SETUP mla_inspect_gpt_oss_converted
  FIXTURES_REQUIRED mla_inspect_gpt_oss ARGS
  "-DCMD=$<TARGET_FILE:mla-convert>|--model|${gpt_oss}|--calib|${calib}|--window|64|${small}|--kv-budget|0.5\
|${e2e}|--e2e-steps|4|--e2e-train-sinks|--e2e-teacher-top-k|16|--out|${gpt_oss}_conv"
  "-DCLEAN=${gpt_oss}_conv" -DEXPECT=ok
  "-DMATCH=end-to-end distillation \\(4 steps.*training attention\\+sinks, teacher top-16 \\+ rest\\).*    2  gqa .*wrote ${gpt_oss}_conv")
# --from that converted checkpoint continues the end-to-end stage (latent set, top-16 teacher) through the MoE and
# the sliding-window layers, and leaves the checkpoint it starts from as it was (stdout comes first in the output).
mla_cli_test(cli_inspect_gpt_oss_convert_from FIXTURES_REQUIRED mla_inspect_gpt_oss_converted ARGS
  "-DCMD=$<TARGET_FILE:mla-convert>|--model|${gpt_oss}|--calib|${calib}|--window|64|${small}|--from|${gpt_oss}_conv\
|${e2e}|--e2e-steps|2|--e2e-train|latent|--e2e-teacher-top-k|16|--out|${gpt_oss}_from"
  "-DCLEAN=${gpt_oss}_from" -DEXPECT=ok
  "-DMATCH=end-to-end distillation \\(2 steps.*training latent, teacher top-16 \\+ rest\\).*wrote ${gpt_oss}_from\
.*resuming from ${gpt_oss}_conv \\(2 MLA layers\\)"
  "-DUNCHANGED=${gpt_oss}_conv/model.safetensors")
mla_cli_test(cli_inspect_sinks_gpt_oss FIXTURES_REQUIRED "mla_inspect_built;mla_inspect_gpt_oss_converted" ARGS
  "-DCMD=${inspect}|sinks|--model|${gpt_oss}|--compare|${gpt_oss}_conv|--text|${calib}|--max-tokens|64\
|--plot|${inspect_dir}/sinks_plots" "-DCLEAN=${inspect_dir}/sinks_plots"
  -DEXPECT=ok
  "-DMATCH=    0    0   gqa   0\\.0*[1-9][0-9]* +0\\.[0-9]+ . +gqa   0\\.0*[1-9][0-9]* .*\
    1    0   gqa   0\\.0*[1-9][0-9]* +0\\.[0-9]+ . +mla   0\\.0*[1-9][0-9]* .*\
(wrote [^ ]*change_sink_mass.svg|gnuplot was not found)")
# kv and geometry on gpt-oss too: the sliding-window layers' ring caches (w8) stay GQA, the full-attention layers
# become MLA at half their bytes; geometry reads both kinds of layer.
mla_cli_test(cli_inspect_kv_gpt_oss FIXTURES_REQUIRED "mla_inspect_built;mla_inspect_gpt_oss_converted" ARGS
  "-DCMD=${inspect}|kv|--model|${gpt_oss}|--compare|${gpt_oss}_conv|--ctx|4096" -DEXPECT=ok
  "-DMATCH=    0   1024 gqa w8   1024 gqa w8.    1      1024 gqa       512 mla.*  all +4096 +3072")
mla_cli_test(cli_inspect_geometry_gpt_oss FIXTURES_REQUIRED "mla_inspect_built;mla_inspect_gpt_oss_converted" ARGS
  "-DCMD=${inspect}|geometry|--model|${gpt_oss}|--compare|${gpt_oss}_conv|--text|${calib}|--max-tokens|32"
  -DEXPECT=ok "-DMATCH=: 32 tokens.*    1    0  gqa .*: 32 tokens.*    0    0  gqa .*    1    0  mla ")
mla_cli_test(cli_inspect_compare_gpt_oss FIXTURES_REQUIRED "mla_inspect_built;mla_inspect_gpt_oss_converted" ARGS
  "-DCMD=${inspect}|compare|--model|${gpt_oss}|--compare|${gpt_oss}_conv|--text|${calib}|--max-tokens|64"
  -DEXPECT=ok "-DMATCH=    0     gqa     gqa  0\\.000000.    1     gqa     mla  0\\.[0-9]+")
# routing on the same tiny gpt-oss (8 experts, top-4) and its conversion, both on the original's 64 tokens: a row of
# statistics per layer for each model, the load histograms, and the change table. Layer 0 (sliding window, kept as
# GQA) gets the same input in both models, so no token changes experts there (0, Jaccard 1); layer 1 is converted
# to MLA, and from there on the drift reaches the routers. --out writes the JSON, --plot the bars (or the message
# that says how to get gnuplot). Alone, with a CSV. A dense model (SmolLM2) is refused by name.
set(routing "${inspect}|routing|--model|${gpt_oss}|--text|${calib}|--max-tokens|64")
set(routing_row " +0\\.[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+  ")
mla_cli_test(cli_inspect_routing_gpt_oss FIXTURES_REQUIRED "mla_inspect_built;mla_inspect_gpt_oss_converted" ARGS
  "-DCMD=${routing}|--compare|${gpt_oss}_conv|--out|${inspect_dir}/routing.json|--plot|${inspect_dir}/routing"
  "-DCLEAN=${inspect_dir}/routing.json|${inspect_dir}/routing" -DEXPECT=ok
  "-DMATCH=: 64 tokens, 8 experts, top-4.*    0 model  ${routing_row}.*    3 compare${routing_row}.*expert load: \
tokens routed to experts 0..7 \\(each token counts in its 4\\).*layer  changed  jaccard.    0   0\\.0000   1\\.0000.    1 \
  0\\.[0-9]+   [01]\\.[0-9]+.*(wrote [^ ]*expert_load.svg|gnuplot was not found)"
  "-DEXIST=${inspect_dir}/routing.json")
mla_cli_test(cli_inspect_routing_gpt_oss_csv FIXTURES_REQUIRED "mla_inspect_built;mla_inspect_gpt_oss" ARGS
  "-DCMD=${routing}|--out|${inspect_dir}/routing.csv" "-DCLEAN=${inspect_dir}/routing.csv" -DEXPECT=ok
  "-DMATCH=layer model    load_cv H\\(token\\)  H\\(load\\)  margin      p5  never chosen.    0 model  ${routing_row}\
.*    3 model  ${routing_row}.*wrote [^ ]*routing.csv"
  "-DEXIST=${inspect_dir}/routing.csv")
mla_cli_test(cli_inspect_routing_needs_moe FIXTURES_REQUIRED mla_inspect_built ARGS
  "-DCMD=${inspect}|routing|--model|@MODEL@|--text|${calib}|--max-tokens|16" -DEXPECT=fail
  "-DMATCH=mla-inspect: error: mla::inspect::routing: '[^']*SmolLM2[^']*' has no mixture-of-experts layers \\(its \
MLP is swiglu\\); routing needs an MoE model")
# Failures before any model is loaded: the output starts with the error, nothing is written.
mla_cli_test(cli_inspect_out_extension FIXTURES_REQUIRED mla_inspect_built ARGS
  "-DCMD=${inspect}|kv|--model|@MODEL@|--out|${inspect_dir}/kv.txt" -DEXPECT=fail
  "-DMATCH=^mla-inspect: error: --out: '[^']*kv.txt' must end in .csv or .json, found '.txt'"
  "-DABSENT=${inspect_dir}/kv.txt")
mla_cli_test(cli_inspect_out_under_a_file FIXTURES_REQUIRED mla_inspect_built ARGS
  "-DCMD=${inspect}|geometry|--model|@MODEL@|--text|${calib}|--out|${blocked}/g.csv" -DEXPECT=fail
  "-DMATCH=^mla-inspect: error: --out: cannot create '${blocked}/g.csv': '[^']*' is not a directory"
  "-DABSENT=${blocked}/g.csv")
mla_cli_test(cli_inspect_missing_text FIXTURES_REQUIRED mla_inspect_built ARGS
  "-DCMD=${inspect}|geometry|--model|@MODEL@|--text|${inspect_dir}/no_such.txt" -DEXPECT=fail
  "-DMATCH=mla-inspect: error: --text: cannot open '[^']*no_such.txt'")
