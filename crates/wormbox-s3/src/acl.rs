//! GetObjectAcl, answered as S3 answers a bucket whose ACLs are disabled
//! (Object Ownership "bucket owner enforced", S3's default): the object's
//! owner, here the principal that wrote the version (as listings show it),
//! holds FULL_CONTROL and no one else is granted anything. Wormbox has no
//! ACLs: who may do what is its roles' business, so PutObjectAcl and the
//! bucket ACL operations stay `NotImplemented`.
//!
//! Invariant: the answer is a read of the version through the same `App`
//! call as HeadObject, so it is judged the same (role, bucket, version,
//! delete marker) and writes nothing.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};
use wormbox_app::GetObject;

use crate::auth::caller;
use crate::convert::{Wormbox, bucket_name, object_key, version};
use crate::error::app_error;

pub(crate) async fn get_object_acl(
    w: &Wormbox,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let actor = caller(&req)?;
    let input = req.input;
    let get = GetObject {
        bucket: bucket_name(&input.bucket)?,
        key: object_key(&input.key)?,
        version: version(input.version_id.as_deref())?,
    };
    let info = w.app.head_object(&actor, &get).map_err(app_error)?;
    Ok(S3Response::new(owner_only(&info.creator)))
}

/// The ACL of an object `owner` owns outright.
fn owner_only(owner: &str) -> GetObjectAclOutput {
    let grant = Grant {
        grantee: Some(Grantee {
            display_name: Some(owner.to_owned()),
            email_address: None,
            id: Some(owner.to_owned()),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    GetObjectAclOutput {
        grants: Some(vec![grant]),
        owner: Some(Owner { id: Some(owner.to_owned()), display_name: Some(owner.to_owned()) }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_alone_holds_full_control() {
        let acl = owner_only("WBWRITER");
        assert_eq!(acl.owner.as_ref().and_then(|o| o.id.as_deref()), Some("WBWRITER"));
        let grants = acl.grants.unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].grantee.as_ref().and_then(|g| g.id.as_deref()), Some("WBWRITER"));
        assert_eq!(grants[0].permission.as_ref().map(Permission::as_str), Some(Permission::FULL_CONTROL));
    }
}
