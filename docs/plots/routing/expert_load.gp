# drawn by mla-inspect (mla::inspect::write_expert_load); redraw with: gnuplot expert_load.gp
if (!exists('suffix')) suffix = ''  # run_gnuplot sets '.tmp' and renames the outputs afterwards
set style fill solid 0.85 noborder
unset key
set xrange [-0.6:7.4]
set yrange [0:0.2357]
set xtics 0,1 out nomirror font ',10'
set ytics out nomirror font ',10'
set grid ytics lc rgb '#dddddd'
set xlabel 'expert' noenhanced
set ylabel 'share' noenhanced
set terminal pngcairo size 1200,400 font 'DejaVu Sans,12' noenhanced
set output 'expert_load.png'.suffix
set multiplot layout 1,4 title 'Expert load per MoE layer: share of the routed slots (dashed: even share)'."\n".'gpt_oss_tiny (blue, left bars) and gpt_oss_tiny_conv50 (green, right bars), 300 tokens, top-4 of 8 experts' font ',14' noenhanced
set title 'layer 0' noenhanced
plot 'expert_load.dat' index 0 using ($1-0.20):2:(0.40) with boxes lc rgb '#3b528b' title 'gpt_oss_tiny', '' index 0 using ($1+0.20):3:(0.40) with boxes lc rgb '#5ec962' title 'gpt_oss_tiny_conv50', 0.125 with lines dt 2 lw 1.5 lc rgb '#444444' title 'even share'
set title 'layer 1' noenhanced
plot 'expert_load.dat' index 1 using ($1-0.20):2:(0.40) with boxes lc rgb '#3b528b' title 'gpt_oss_tiny', '' index 1 using ($1+0.20):3:(0.40) with boxes lc rgb '#5ec962' title 'gpt_oss_tiny_conv50', 0.125 with lines dt 2 lw 1.5 lc rgb '#444444' title 'even share'
set title 'layer 2' noenhanced
plot 'expert_load.dat' index 2 using ($1-0.20):2:(0.40) with boxes lc rgb '#3b528b' title 'gpt_oss_tiny', '' index 2 using ($1+0.20):3:(0.40) with boxes lc rgb '#5ec962' title 'gpt_oss_tiny_conv50', 0.125 with lines dt 2 lw 1.5 lc rgb '#444444' title 'even share'
set title 'layer 3' noenhanced
plot 'expert_load.dat' index 3 using ($1-0.20):2:(0.40) with boxes lc rgb '#3b528b' title 'gpt_oss_tiny', '' index 3 using ($1+0.20):3:(0.40) with boxes lc rgb '#5ec962' title 'gpt_oss_tiny_conv50', 0.125 with lines dt 2 lw 1.5 lc rgb '#444444' title 'even share'
unset multiplot
set terminal svg size 1200,400 font 'DejaVu Sans,12' noenhanced background '#ffffff'
set output 'expert_load.svg'.suffix
set multiplot layout 1,4 title 'Expert load per MoE layer: share of the routed slots (dashed: even share)'."\n".'gpt_oss_tiny (blue, left bars) and gpt_oss_tiny_conv50 (green, right bars), 300 tokens, top-4 of 8 experts' font ',14' noenhanced
set title 'layer 0' noenhanced
plot 'expert_load.dat' index 0 using ($1-0.20):2:(0.40) with boxes lc rgb '#3b528b' title 'gpt_oss_tiny', '' index 0 using ($1+0.20):3:(0.40) with boxes lc rgb '#5ec962' title 'gpt_oss_tiny_conv50', 0.125 with lines dt 2 lw 1.5 lc rgb '#444444' title 'even share'
set title 'layer 1' noenhanced
plot 'expert_load.dat' index 1 using ($1-0.20):2:(0.40) with boxes lc rgb '#3b528b' title 'gpt_oss_tiny', '' index 1 using ($1+0.20):3:(0.40) with boxes lc rgb '#5ec962' title 'gpt_oss_tiny_conv50', 0.125 with lines dt 2 lw 1.5 lc rgb '#444444' title 'even share'
set title 'layer 2' noenhanced
plot 'expert_load.dat' index 2 using ($1-0.20):2:(0.40) with boxes lc rgb '#3b528b' title 'gpt_oss_tiny', '' index 2 using ($1+0.20):3:(0.40) with boxes lc rgb '#5ec962' title 'gpt_oss_tiny_conv50', 0.125 with lines dt 2 lw 1.5 lc rgb '#444444' title 'even share'
set title 'layer 3' noenhanced
plot 'expert_load.dat' index 3 using ($1-0.20):2:(0.40) with boxes lc rgb '#3b528b' title 'gpt_oss_tiny', '' index 3 using ($1+0.20):3:(0.40) with boxes lc rgb '#5ec962' title 'gpt_oss_tiny_conv50', 0.125 with lines dt 2 lw 1.5 lc rgb '#444444' title 'even share'
unset multiplot
unset output
