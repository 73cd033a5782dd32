//! The user's profile resources, as BroadWorks serves them:
//!
//! | path (after `v2.0/user/{u}/`) | methods | document |
//! |---|---|---|
//! | `profile` | GET | `Profile`: details, additionalDetails, and the URIs below |
//! | `profile/Device` | GET | `AccessDevices` |
//! | `profile/Fac` | GET | `FAC`: the feature access codes of the user's services |
//! | `profile/Registrations` | GET | `Registrations` (none: Bridgehead has no SIP registrar) |
//! | `profile/Schedule` | GET | `ScheduleUri` (no schedules yet) |
//! | `profile/Password/Portal` | PUT `Portal` | changes the password; users give `oldPassword` |
//!
//! URIs in documents are relative to the Xsi-Actions root (`/v2.0/user/…`), as BroadWorks
//! writes them: clients join them with the endpoint they were given.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::http::{self, RequestContext, ResponseBody};
use crate::telephony::User;

use super::{user_uri, XsiActions};
use crate::xsi::codec::{self, Format};
use crate::xsi::error::ApiError;
use crate::xsi::model::{self, XSI_NS};
use crate::xsi::response::{empty, ok};

impl XsiActions {
    pub(super) fn profile(
        &self,
        user: &User,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let profile = model::Profile {
            xmlns: XSI_NS,
            details: model::ProfileDetails {
                user_id: user.id.clone(),
                first_name: user.first_name.clone(),
                last_name: user.last_name.clone(),
                group_id: user.group_id.clone(),
                service_provider: model::ServiceProvider {
                    is_enterprise: true,
                    id: user.enterprise_id.clone(),
                },
                number: user.number.clone(),
                extension: user.extension.clone(),
            },
            additional_details: model::AdditionalDetails {},
            fac: user_uri(&user.id, "profile/Fac"),
            registrations: user_uri(&user.id, "profile/Registrations"),
            schedule_list: user_uri(&user.id, "profile/Schedule"),
            portal_password_change: user_uri(&user.id, "profile/Password/Portal"),
            country_code: self.config.country_code.clone(),
        };
        Ok(ok(codec::render(&profile, None, format)?, format))
    }

    pub(super) async fn devices(
        &self,
        user: &User,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let devices = model::AccessDevices {
            xmlns: XSI_NS,
            access_device: self
                .telephony
                .devices(&user.id)
                .await?
                .into_iter()
                .map(|d| model::AccessDevice {
                    device_name: d.name,
                    device_level: "Group",
                    device_type: d.device_type,
                    device_line_port: d.line_port,
                })
                .collect(),
        };
        Ok(ok(codec::render(&devices, None, format)?, format))
    }

    pub(super) fn feature_access_codes(
        &self,
        user: &User,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let fac = model::Fac {
            xmlns: XSI_NS,
            feature_access_code: self
                .telephony
                .services(user)
                .iter()
                .flat_map(|service| service.feature_access_codes())
                .map(|(name, code)| model::FeatureAccessCode {
                    code_name: (*name).to_owned(),
                    code: (*code).to_owned(),
                })
                .collect(),
        };
        Ok(ok(codec::render(&fac, None, format)?, format))
    }

    pub(super) fn registrations(&self, format: Format) -> Result<Response<ResponseBody>, ApiError> {
        let registrations = model::Registrations { xmlns: XSI_NS };
        Ok(ok(codec::render(&registrations, None, format)?, format))
    }

    pub(super) fn schedules(&self, format: Format) -> Result<Response<ResponseBody>, ApiError> {
        let schedules = model::ScheduleUri { xmlns: XSI_NS };
        Ok(ok(codec::render(&schedules, None, format)?, format))
    }

    /// `PUT profile/Password/Portal`. Users changing their own password must give the
    /// current one; an administrator (or a CTI application, `caller` None) need not.
    pub(super) async fn change_password(
        &self,
        request: Request<Incoming>,
        context: &RequestContext,
        caller: Option<&User>,
        user: &User,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let body_format = Format::of_body(request.headers())?;
        let body = http::read_body(request, &context.limits).await?;
        let portal: model::Portal =
            codec::parse(&body, body_format, "Portal", context.max_xml_depth)?;
        let own = caller.is_some_and(|c| c.id.eq_ignore_ascii_case(&user.id));
        if own && portal.old_password.is_none() {
            return Err(ApiError::Invalid {
                field: "oldPassword".into(),
                reason: "required to change your own password".into(),
            });
        }
        let old = portal.old_password.as_deref().filter(|_| own);
        self.telephony
            .change_password(
                user,
                old,
                &portal.new_password,
                self.auth.scram_iterations(),
            )
            .await?;
        tracing::info!(user = %user.id, by = caller.map_or("a CTI application", |c| c.id.as_str()), "XSI password change");
        Ok(empty(StatusCode::OK))
    }
}
