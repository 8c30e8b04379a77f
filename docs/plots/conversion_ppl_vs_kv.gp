# Perplexity vs KV-cache size of the conversion table (bench/RESULTS.md), PNG and SVG.
# Draw with:  cd docs/plots && gnuplot conversion_ppl_vs_kv.gp
original_bytes = 1536
original_ppl = 21.3986
set title "GQA -> MLA conversion of SmolLM2-135M: perplexity vs KV-cache size\nWikiText-2 raw test, whole file, training-free (bench/RESULTS.md)" noenhanced
set xlabel "KV cache, float32 bytes per token per layer (log scale)" offset 0,-0.8 noenhanced
set bmargin 5.5
set ylabel "perplexity (log scale)" noenhanced
set logscale xy 2
set xrange [160:1900]
set yrange [16:700]
set xtics ("192\n-87.5 %%" 192, "384\n-75 %%" 384, "576\n-62.5 %%" 576, "768\n-50 %%" 768, "1536\noriginal" 1536)
set ytics (20, 30, 50, 100, 200, 300, 500)
set grid xtics ytics lc rgb '#dddddd'
set key top right box opaque noenhanced
set style line 1 lc rgb '#d95f02' lw 2 pt 7 ps 1.3 dt 2
set style line 2 lc rgb '#d95f02' lw 2 pt 5 ps 1.3
set style line 3 lc rgb '#1b9e77' lw 2 pt 7 ps 1.3 dt 2
set style line 4 lc rgb '#1b9e77' lw 2 pt 5 ps 1.3
set style line 5 lc rgb '#000000' pt 9 ps 2
set label 1 sprintf("original GQA %.2f", original_ppl) at original_bytes, original_ppl offset -1.2,0 right noenhanced
set terminal pngcairo size 1000,700 font 'DejaVu Sans,13' noenhanced
set output 'conversion_ppl_vs_kv.png'
plot 'conversion_ppl_vs_kv.dat' using 1:2 with linespoints ls 1 title 'published recipes', \
     '' using 1:3 with linespoints ls 2 title 'published recipes + refit', \
     '' using 1:4 with linespoints ls 3 title 'project', \
     '' using 1:5 with linespoints ls 4 title 'project + refit', \
     '+' using (original_bytes):(original_ppl) every ::0::0 with points ls 5 title 'original (GQA)'
set terminal svg size 1000,700 font 'DejaVu Sans,13' noenhanced background '#ffffff'
set output 'conversion_ppl_vs_kv.svg'
replot
unset output
