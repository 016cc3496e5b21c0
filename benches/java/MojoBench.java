// genmodel's single-thread score0 loop, for benches/mojo_bench.sh: the same rows as the Rust
// bench (benches/mojo_score.rs), encoded once (levels → indices, as RowToRawDataConverter does),
// then scored PASSES times; prints the best pass in rows/s.
//
//   javac -cp h2o-genmodel.jar MojoBench.java && java -cp h2o-genmodel.jar:. MojoBench M.zip DATA.csv PASSES
//
// With a 4th argument `contributions` (benches/shap_bench.sh), each row's TreeSHAP contributions
// instead (`makeContributionsPredictor().calculateContributions`, the call behind
// `EasyPredictModelWrapper.predictContributions`), on the same encoded rows.
import hex.genmodel.MojoModel;
import hex.genmodel.PredictContributions;
import hex.genmodel.PredictContributionsFactory;
import java.nio.file.*;
import java.util.*;

public class MojoBench {
  public static void main(String[] args) throws Exception {
    MojoModel m = MojoModel.load(args[0]);
    List<String> lines = Files.readAllLines(Paths.get(args[1]));
    int passes = Integer.parseInt(args[2]);
    String[] header = lines.get(0).split(",");
    String[] names = m.getNames();
    int n = m.nfeatures();
    int[] field = new int[n];
    for (int j = 0; j < n; j++) {
      field[j] = Arrays.asList(header).indexOf(names[j]);
      if (field[j] < 0) throw new RuntimeException("no column " + names[j]);
    }
    double[][] rows = new double[lines.size() - 1][n];
    for (int i = 1; i < lines.size(); i++) {
      String[] f = lines.get(i).split(",", -1);
      for (int j = 0; j < n; j++) {
        String s = f[field[j]];
        String[] dom = m.getDomainValues(j);
        if (s.isEmpty() || s.equals("NA")) rows[i - 1][j] = Double.NaN;
        else if (dom == null) rows[i - 1][j] = Double.parseDouble(s);
        else {
          int k = Arrays.asList(dom).indexOf(s);
          rows[i - 1][j] = k < 0 ? Double.NaN : k;
        }
      }
    }
    if (args.length > 3 && args[3].equals("contributions")) {
      PredictContributions pc = ((PredictContributionsFactory) m).makeContributionsPredictor();
      double best = Double.MAX_VALUE, sink = 0;
      for (int p = 0; p < passes; p++) {
        double pass = 0;
        long t = System.nanoTime();
        for (double[] r : rows) { float[] c = pc.calculateContributions(r); pass += c[c.length - 1] + c[0]; }
        best = Math.min(best, (System.nanoTime() - t) / 1e9);
        sink = pass;
      }
      System.out.printf("genmodel contributions: %d rows, best of %d passes %.4f s = %.0f rows/s (%.3f us/row) [sink %.6f]%n",
          rows.length, passes, best, rows.length / best, best * 1e6 / rows.length, sink);
      return;
    }
    double[] preds = new double[m.getPredsSize()];
    double best = Double.MAX_VALUE, sink = 0;
    for (int p = 0; p < passes; p++) {
      long t = System.nanoTime();
      for (double[] r : rows) { m.score0(r, preds); sink += preds[preds.length - 1]; }
      best = Math.min(best, (System.nanoTime() - t) / 1e9);
    }
    System.out.printf("genmodel score0: %d rows, best of %d passes %.4f s = %.0f rows/s (%.3f us/row) [sink %.3f]%n",
        rows.length, passes, best, rows.length / best, best * 1e6 / rows.length, sink);
  }
}
