# drawn by mla-convert --report (mla::inspect::write_conversion_report); redraw with: gnuplot e2e_kl.gp
if (!exists('suffix')) suffix = ''  # run_gnuplot sets '.tmp' and renames the outputs afterwards
set title 'End-to-end distillation: held-out KL to the source' noenhanced
set xlabel 'step' noenhanced
set ylabel 'KL (nats per token)' noenhanced
set grid ytics lc rgb '#dddddd'
set key outside right top noenhanced
set tics font ',10'
set datafile missing 'NaN'
set autoscale xfix
set offsets 0.5, 0.5, graph 0.05, graph 0.05
set terminal pngcairo size 900,500 font 'DejaVu Sans,11' noenhanced
set output 'e2e_kl.png'.suffix
plot 'e2e_kl.dat' using 1:2 with linespoints pt 7 ps 0.6 lw 1.5 title 'held-out KL'
set terminal svg size 900,500 font 'DejaVu Sans,11' noenhanced background '#ffffff'
set output 'e2e_kl.svg'.suffix
replot
unset output
