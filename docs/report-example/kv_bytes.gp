# drawn by mla-convert --report (mla::inspect::write_conversion_report); redraw with: gnuplot kv_bytes.gp
if (!exists('suffix')) suffix = ''  # run_gnuplot sets '.tmp' and renames the outputs afterwards
set title 'KV cache per token and layer: converted 50.0 % of the original' noenhanced
set xlabel 'layer' noenhanced
set ylabel 'bytes per token (float32)' noenhanced
set grid ytics lc rgb '#dddddd'
set key outside right top noenhanced
set tics font ',10'
set datafile missing 'NaN'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set yrange [0:*]
set terminal pngcairo size 900,500 font 'DejaVu Sans,11' noenhanced
set output 'kv_bytes.png'.suffix
plot 'kv_bytes.dat' using 2:xtic(int($1) % 5 == 0 ? stringcolumn(1) : '') title 'original' lc rgb '#9e9e9e', '' using 3 title 'converted' lc rgb '#1f77b4'
set terminal svg size 900,500 font 'DejaVu Sans,11' noenhanced background '#ffffff'
set output 'kv_bytes.svg'.suffix
replot
unset output
