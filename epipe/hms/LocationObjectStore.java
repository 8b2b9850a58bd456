// The local metastore's store: HMS 2.3's own, and alter_database also changes a database's
// location (HMS 2.3 ignores a new locationUri there; HMS 3 changes it, HIVE-8472). Without
// it a directory that holds a database with tables could not move. Compiled by `epipe hms
// start` against the jars it runs.
package org.epipe.hms;

import javax.jdo.Query;
import org.apache.hadoop.hive.metastore.ObjectStore;
import org.apache.hadoop.hive.metastore.api.Database;
import org.apache.hadoop.hive.metastore.api.MetaException;
import org.apache.hadoop.hive.metastore.api.NoSuchObjectException;
import org.apache.hadoop.hive.metastore.model.MDatabase;

public class LocationObjectStore extends ObjectStore {
  @Override
  public boolean alterDatabase(String name, Database db)
      throws MetaException, NoSuchObjectException {
    boolean altered = super.alterDatabase(name, db);
    String location = db.getLocationUri();
    if (!altered || location == null || location.isEmpty()) {
      return altered;
    }
    boolean committed = false;
    try {
      openTransaction();
      Query query = getPersistenceManager().newQuery(MDatabase.class, "name == dbName");
      query.declareParameters("java.lang.String dbName");
      query.setUnique(true);
      MDatabase found = (MDatabase) query.execute(name.toLowerCase());
      if (found == null) {
        throw new NoSuchObjectException("database " + name + " does not exist");
      }
      found.setLocationUri(location);
      committed = commitTransaction();
    } finally {
      if (!committed) {
        rollbackTransaction();
      }
    }
    return committed;
  }
}
